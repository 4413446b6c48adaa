"""A real browser posts a real HTML form to the real server (PostObject): headless Chromium
(Debian's chromium-headless-shell, scripts/install-chromium.sh) loads a page whose form holds
the fields boto3's generate_presigned_post made, a file picked through the page's file input,
and submits it; the object must then be there with the browser's file name and type."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import uuid

import pytest

from tests.support.server import start_server, stop_server

BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")

PAGE = """<!doctype html><html><body>
<form id="upload" method="post" action="{action}" enctype="multipart/form-data">
{inputs}
<input type="file" name="file" id="file">
</form>
<script>
const picked = new DataTransfer();
picked.items.add(new File([{content}], "report.csv", {{type: "text/csv"}}));
document.getElementById("file").files = picked.files;
document.getElementById("upload").submit();
</script>
</body></html>
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("browser") / "data")
    yield server
    stop_server(server)


def test_chromium_posts_a_signed_html_form(srv, tmp_path):
    assert BROWSER, "Chromium is missing: run scripts/install-chromium.sh"
    s3 = srv.client(signature_version="s3v4")
    bucket = "browser-" + uuid.uuid4().hex[:10]
    s3.create_bucket(Bucket=bucket)
    form = s3.generate_presigned_post(
        bucket, "inbox/${filename}", Fields={"success_action_status": "201"},
        Conditions=[["starts-with", "$key", "inbox/"], {"success_action_status": "201"},
                    ["content-length-range", 1, 1024]], ExpiresIn=300)
    inputs = "\n".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                       for k, v in form["fields"].items())
    page = tmp_path / "form.html"
    content = "id,total\n1,42\n"
    page.write_text(PAGE.format(action=html.escape(form["url"]), inputs=inputs,
                                content=json.dumps(content)))
    run = subprocess.run([BROWSER, "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
                          "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, HOME=str(tmp_path)))
    assert run.returncode == 0, run.stderr[-2000:]
    got = s3.get_object(Bucket=bucket, Key="inbox/report.csv")
    assert got["Body"].read().decode() == content and got["ContentType"] == "text/csv"
    assert "PostResponse" in run.stdout or "inbox/report.csv" in run.stdout, run.stdout[-2000:]
