#!/usr/bin/env python3
"""The Python peer of the chunked-upload benchmark: the `flowjs` 0.1.1 package from PyPI (the
library chunked-upload descends from) behind a small Tornado server, used the way its README
shows.

    GET  /upload   flow.js test request: flowjs.save() -> 200, or 204 on flowjs.NoContent
    POST /upload   a chunk (multipart, part "file"): flowjs.save() with a TornadoRequest;
                   True -> the file is assembled, False -> chunk stored, 400 on flowjs.BadRequest

Answers carry the same JSON as chunked-upload's example server ({"status": "chunk_stored"} or
{"status": "assembled", "file": {"name", "size"}}) so the load generator drives both alike.

Started by bench/loadgen; prints "... listening on http://127.0.0.1:PORT/ versions={...}" once
bound. Needs `pip install flowjs==0.1.1 tornado` (bench/run.sh does it).

Notes on the package (bench/README.md has more):
* `flowjs.requests` is not imported by `import flowjs`: import it explicitly.
* `flowjs.NoContent` and `flowjs.BadRequest` derive from BaseException, not Exception.
* TornadoRequest writes each chunk (already whole in memory: Tornado buffers request bodies)
  to a NamedTemporaryFile in tempfile.gettempdir(), and flowjs then renames it into tempDir:
  run with TMPDIR on the same filesystem as --temp.
* The final merge reads each chunk whole into memory and writes it; nothing is fsynced.
"""

import argparse
import importlib.metadata
import json
import os
import platform
import uuid

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

import flowjs
import flowjs.requests  # not imported by `import flowjs`


def versions():
    found = {}
    for name in ("flowjs", "tornado", "filelock"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "?"
    found["python"] = platform.python_version()
    return found


class UploadHandler(tornado.web.RequestHandler):
    def initialize(self, config, dest):
        self.config = config
        self.dest = dest

    def _destination(self, request):
        # As in the package's README: a unique destination per request.
        name = uuid.uuid1().hex + "_" + os.path.basename(request.get_file_name())
        return os.path.join(self.dest, name)

    def _json(self, status, body):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def get(self):
        request = flowjs.requests.TornadoRequest(self)
        try:
            flowjs.save(self._destination(request), self.config, request)
        except flowjs.NoContent:
            self.set_status(204)
            self.finish()
            return
        except flowjs.BadRequest:
            self._json(400, {"success": False, "error": "bad request"})
            return
        self._json(200, {"success": True, "status": "chunk_present"})

    def post(self):
        request = flowjs.requests.TornadoRequest(self)
        destination = self._destination(request)
        try:
            saved = flowjs.save(destination, self.config, request)
        except flowjs.BadRequest:
            self._json(400, {"success": False, "error": "bad request"})
            return
        if saved:
            self._json(200, {
                "success": True,
                "status": "assembled",
                "fresh": True,
                "file": {
                    "name": os.path.basename(destination),
                    "size": os.path.getsize(destination),
                },
            })
        else:
            self._json(200, {
                "success": True,
                "status": "chunk_stored",
                "chunk": request.get_current_chunk_number(),
            })


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--dest", required=True, help="where assembled files go")
    parser.add_argument("--temp", required=True, help="flowjs tempDir (chunks)")
    parser.add_argument("--max-body-size", type=int, default=100 * 1024 * 1024,
                        help="Tornado's max_body_size (bodies are held in memory)")
    args = parser.parse_args()

    os.makedirs(args.dest, exist_ok=True)
    os.makedirs(args.temp, exist_ok=True)
    config = flowjs.Config({"tempDir": args.temp})
    app = tornado.web.Application([
        (r"/upload", UploadHandler, {"config": config, "dest": args.dest}),
    ])
    server = tornado.httpserver.HTTPServer(app, max_body_size=args.max_body_size)
    sockets = tornado.netutil.bind_sockets(args.port, address=args.host)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    print("flowjs peer listening on http://%s:%d/ versions=%s"
          % (args.host, port, json.dumps(versions(), separators=(",", ":"))), flush=True)
    tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
