"""A warm function worker, run inside the sandbox: load the handler once, serve many events.

Protocol: one JSON request per line on stdin ({"id", "event", "context"}), one
JSON answer per line on the original stdout ({"id", "ok", "result"} or
{"id", "ok": false, "error": {...}}). The handler's own prints go to stderr,
which the server keeps as the function's log. Stdlib only.

    python fnworker.py CODE_DIR module.func
"""

import importlib
import json
import os
import sys
import traceback


def main() -> int:
    code_dir, handler = sys.argv[1], sys.argv[2]
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                           # the handler's print() goes to the log
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.path.insert(0, code_dir)
    module_name, _, func_name = handler.rpartition(".")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        proto.write(json.dumps({"ready": True}) + "\n")
    except BaseException as exc:  # noqa: BLE001 - reported to the server, which fails the call
        proto.write(json.dumps({"ready": False, "error": _error(exc)}) + "\n")
        return 1
    for line in sys.stdin:
        req = json.loads(line)
        try:
            result = func(req.get("event"), req.get("context") or {})
            out = {"id": req["id"], "ok": True, "result": result}
            text = json.dumps(out)
        except BaseException as exc:  # noqa: BLE001 - the caller gets the error back
            text = json.dumps({"id": req["id"], "ok": False, "error": _error(exc)})
        proto.write(text + "\n")
    return 0


def _error(exc: BaseException) -> dict:
    return {"type": type(exc).__name__, "message": str(exc),
            "trace": traceback.format_exc(limit=20)[-4000:]}


if __name__ == "__main__":
    sys.exit(main())
