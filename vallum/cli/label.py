"""`vallum label get|set|ls` and `vallum admin bucket create`: labels from the shell.

Plain S3 calls through the SigV4 client (vallum/client.py), the same ones any stock client
can make: a label is read from the ``x-amz-meta-vallum-label`` metadata HeadObject returns
and set with PutObjectTagging of the reserved tag ``vallum:label`` (the server applies the
MAC rules and says why it refuses). Credentials: --access-key/--secret-key or the
environment (VALLUM_ACCESS_KEY / AWS_ACCESS_KEY_ID, VALLUM_ROOT_ACCESS_KEY), never printed.
Exit codes: 0 ok, 1 refused by the server or unreachable, 2 usage error.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, NoReturn
from xml.sax.saxutils import escape

import typer
from defusedxml import ElementTree

from vallum.client import Client, VallumError

META = "x-amz-meta-vallum-label"
TAG = "vallum:label"
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

app = typer.Typer(help="Object classification labels (MAC): show, set, list.",
                  no_args_is_help=True, add_completion=False)
bucket_app = typer.Typer(help="Buckets with a label range.", no_args_is_help=True)


@app.callback()
def _main(
    ctx: typer.Context,
    endpoint: str = typer.Option(None, "--endpoint", envvar="VALLUM_ENDPOINT",
                                 help="Gateway URL [default http://127.0.0.1:9000]"),
    access_key: str | None = typer.Option(None, "--access-key", help="Signing key id [env VALLUM_ACCESS_KEY or AWS_ACCESS_KEY_ID]"),
    secret_key: str | None = typer.Option(None, "--secret-key", help="Signing secret [env VALLUM_SECRET_KEY or AWS_SECRET_ACCESS_KEY]"),
    region: str = typer.Option(None, "--region", envvar="VALLUM_REGION"),
    session_level: str | None = typer.Option(None, "--session-level", help="Run at this level "
                                             "(x-vallum-session-level) instead of the key's"),
) -> None:
    ctx.obj = client_from(endpoint, access_key, secret_key, region, session_level, "label")


def client_from(endpoint: str | None, access_key: str | None, secret_key: str | None,
                region: str | None, session_level: str | None, group: str) -> Client:
    """A SigV4 client from flags, else the environment (Client.from_env's variables)."""
    try:
        base = Client.from_env()
    except VallumError:
        base = None
    key = access_key or (base.access_key if base else None)
    secret = secret_key or (base.secret_key if base else None)
    if not key or not secret:
        _fail(group, "no credentials: pass --access-key/--secret-key or set AWS_ACCESS_KEY_ID "
                     "and AWS_SECRET_ACCESS_KEY (or VALLUM_ACCESS_KEY / VALLUM_SECRET_KEY)", 2)
    try:
        return Client(endpoint or (base.endpoint if base else "http://127.0.0.1:9000"), key, secret,
                      session_token=base.token if base and not access_key else None,
                      region=region or (base.region if base else "us-east-1"),
                      session_level=session_level,
                      verify=base.verify if base else True)
    except VallumError as exc:
        _fail(group, exc.message, 2)


def _fail(group: str, message: str, code: int = 1) -> NoReturn:
    typer.echo(f"vallum {group}: {message}", err=True)
    raise typer.Exit(code)


def _call(group: str, client: Client, method: str, path: str, **kw: Any) -> tuple[dict[str, str], bytes]:
    """One S3 call; exit 1 with the server's code and message when it is refused."""
    try:
        status, headers, body = client.request(method, path, **kw)
    except OSError as exc:
        _fail(group, f"cannot reach {client.endpoint}: {exc}")
    if status >= 300:
        code, message = str(status), ""
        try:
            root = ElementTree.fromstring(body)
            code, message = root.findtext("Code") or code, root.findtext("Message") or ""
        except Exception:  # noqa: BLE001 - a HEAD refusal has no body: the status says it
            code = {403: "AccessDenied", 404: "NoSuchKey"}.get(status, code)
        _fail(group, f"{code}: {message}" if message else code)
    return headers, body


def _path(bucket: str, key: str) -> str:
    return f"/{bucket}/{key}"


def _version(version_id: str | None) -> dict[str, str]:
    return {"versionId": version_id} if version_id else {}


def label_of(client: Client, bucket: str, key: str, version_id: str | None = None) -> str:
    headers, _ = _call("label", client, "HEAD", _path(bucket, key), query=_version(version_id))
    return headers.get(META) or headers.get("x-vallum-classification") or ""


VersionOpt = typer.Option(None, "--version-id", help="A version other than the newest")


@app.command("get")
def get(ctx: typer.Context, bucket: str, key: str, version_id: str = VersionOpt) -> None:
    """Print an object's label (as NoSuchKey if the caller may not see it)."""
    typer.echo(label_of(ctx.obj, bucket, key, version_id))


@app.command("set")
def set_(ctx: typer.Context, bucket: str, key: str, label: str,
         version_id: str = VersionOpt) -> None:
    """Raise an object's label, keeping its tags (lowering it is `vallum admin label downgrade`)."""
    client: Client = ctx.obj
    query = {"tagging": "", **_version(version_id)}
    _, body = _call("label", client, "GET", _path(bucket, key), query=query)
    tags = [(t.findtext(_NS + "Key") or "", t.findtext(_NS + "Value") or "")
            for t in ElementTree.fromstring(body).iter(_NS + "Tag")]
    tags = [(k, v) for k, v in tags if k != TAG] + [(TAG, label)]
    doc = ("<Tagging><TagSet>" + "".join(f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>"
                                         for k, v in tags) + "</TagSet></Tagging>").encode()
    md5 = base64.b64encode(hashlib.md5(doc, usedforsecurity=False).digest()).decode()
    _call("label", client, "PUT", _path(bucket, key), query=query, body=doc,
          headers={"content-md5": md5, "content-type": "application/xml"})
    typer.echo(label_of(client, bucket, key, version_id))


@app.command("ls")
def ls(ctx: typer.Context, bucket: str,
       prefix: str = typer.Option("", "--prefix", "-p", help="Only keys under this prefix"),
       output: str = typer.Option("table", "--output", "-o",
                                  help="table (key<TAB>label, one a line) or json")) -> None:
    """List the keys under a prefix that the caller may see, with their labels."""
    if output not in ("table", "json"):
        _fail("label", "--output must be json or table", 2)
    client: Client = ctx.obj
    rows = []
    try:
        keys = [k for k, _ in client.list_objects(bucket, prefix)]
    except VallumError as exc:
        _fail("label", f"{exc.code}: {exc.message}" if exc.message else exc.code)
    except OSError as exc:
        _fail("label", f"cannot reach {client.endpoint}: {exc}")
    for k in keys:
        rows.append({"key": k, "label": label_of(client, bucket, k)})
    if output == "json":
        typer.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            typer.echo(f"{row['key']}\t{row['label']}")


@bucket_app.command("create")
def bucket_create(ctx: typer.Context, name: str,
                  floor: str = typer.Option(..., "--floor", help="Lowest label, e.g. UNCLASSIFIED"),
                  ceiling: str = typer.Option(..., "--ceiling", help="Highest label, e.g. SECRET")) -> None:
    """Create a bucket whose objects' labels must lie in [floor, ceiling]."""
    admin = ctx.obj.client               # the `vallum admin` group's endpoint and keys
    if not admin.access_key or not admin.secret_key:
        _fail("admin", "no credentials: pass --access-key/--secret-key or set "
                       "VALLUM_ROOT_ACCESS_KEY and VALLUM_ROOT_SECRET_KEY", 2)
    client = client_from(admin.endpoint, admin.access_key, admin.secret_key, admin.region,
                         None, "admin")
    _call("admin", client, "PUT", f"/{name}",
          headers={"x-vallum-label-floor": floor, "x-vallum-label-ceiling": ceiling})
    typer.echo(f"created {name} [{floor}, {ceiling}]")
