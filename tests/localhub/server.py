"""A stand-in for the Hugging Face hub on 127.0.0.1: the endpoints ``huggingface_hub``, ``transformers`` and
``datasets`` call, served from repo folders on disk, with every request recorded.

Also a blocking proxy: point HTTP(S)_PROXY at it and any request for another host is refused (403) and recorded, so
a test can say which hosts the libraries tried to reach besides the hub.
"""

from __future__ import annotations

import hashlib
import json
import re
import socketserver
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

# Stored with Git LFS on the real hub: their ETag is the sha256 of the content, sent as X-Linked-Etag.
LFS_SUFFIXES = (".bin", ".safetensors", ".parquet", ".h5", ".msgpack", ".ckpt", ".pt")
COMMIT_DATE = "2024-01-01T00:00:00.000Z"


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int
    blob_id: str  # the git blob sha1, as the hub reports in "oid"
    sha256: str
    lfs: bool


@dataclass
class HubRepo:
    """One repository: its files (read from ``folder``) at a single commit on ``main``."""

    repo_type: str  # "model" or "dataset"
    repo_id: str
    folder: Path
    files: dict[str, HubFile] = field(default_factory=dict)
    sha: str = ""

    def __post_init__(self):
        for file in sorted(p for p in self.folder.rglob("*") if p.is_file()):
            content = file.read_bytes()
            path = file.relative_to(self.folder).as_posix()
            blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
            self.files[path] = HubFile(path, len(content), blob, hashlib.sha256(content).hexdigest(),
                                       path.endswith(LFS_SUFFIXES))
        listing = "".join(f"{f.path}\t{f.blob_id}\n" for f in self.files.values())
        self.sha = hashlib.sha1(f"{self.repo_type}/{self.repo_id}\n{listing}".encode()).hexdigest()

    def directories(self) -> set[str]:
        return {"/".join(path.split("/")[:i]) for path in self.files for i in range(1, path.count("/") + 1)}

    def entry(self, path: str, expand: bool = False) -> dict | None:
        """The tree / paths-info entry of a file or directory, None where there is neither."""
        if path in self.files:
            file = self.files[path]
            entry = {"type": "file", "oid": file.blob_id, "size": file.size, "path": path}
            if file.lfs:
                entry["lfs"] = {"oid": file.sha256, "size": file.size, "pointerSize": 134}
            if expand:
                entry["lastCommit"] = {"id": self.sha, "title": "stand-in", "date": COMMIT_DATE}
            return entry
        if path in self.directories():
            oid = hashlib.sha1(f"{self.sha}/{path}".encode()).hexdigest()
            return {"type": "directory", "oid": oid, "size": 0, "path": path}
        return None

    def tree(self, base: str, recursive: bool, expand: bool) -> list[dict] | None:
        base = base.strip("/")
        if base and base not in self.directories():
            return None
        prefix = f"{base}/" if base else ""
        paths = sorted({p for p in [*self.files, *self.directories()] if p.startswith(prefix)})
        if not recursive:
            paths = [p for p in paths if "/" not in p[len(prefix):]]
        return [self.entry(p, expand) for p in paths]

    def info(self) -> dict:
        plural = f"{self.repo_type}s"
        info = {"_id": self.sha[:24], "id": self.repo_id, "sha": self.sha, "private": False, "disabled": False,
                "gated": False, "downloads": 0, "likes": 0, "tags": [], "lastModified": COMMIT_DATE,
                "createdAt": COMMIT_DATE, "author": self.repo_id.split("/")[0],
                "siblings": [{"rfilename": path} for path in self.files],
                "usedStorage": sum(f.size for f in self.files.values())}
        if self.repo_type == "model" and "config.json" in self.files:
            config = json.loads((self.folder / "config.json").read_text())
            info.update({"modelId": self.repo_id, "library_name": "transformers",
                         "config": {"architectures": config.get("architectures"),
                                    "model_type": config.get("model_type")}})
        info["_plural"] = plural
        return info


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query
    status: int
    repo: str | None  # "<type>:<id as requested>", None where the path names no repository
    kind: str  # api-info, tree, paths-info, commits, refs, discussions, resolve, redirect, other


class _Served:
    """A socket server on 127.0.0.1 in a daemon thread, shut down on leaving the ``with`` block."""

    _server: socketserver.BaseServer | None = None

    def _serve(self, server: socketserver.ThreadingMixIn, name: str) -> None:
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name=name, daemon=True).start()

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"


class LocalHub(_Served):
    """The hub stand-in: ``with LocalHub(repos, aliases) as hub:`` serves on ``hub.endpoint`` until exit.

    ``aliases`` maps a legacy id to its current one ("bert-base-uncased" -> "google-bert/bert-base-uncased"): every
    URL naming the legacy id is answered with a 307 to the same URL with the current id, as the real hub does.
    """

    def __init__(self, repos: list[HubRepo], aliases: dict[str, str] | None = None):
        self.repos = {(repo.repo_type, repo.repo_id): repo for repo in repos}
        self.aliases = dict(aliases or {})
        self.requests: list[Request] = []

    # ------------------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> LocalHub:
        hub = self

        class Handler(_HubHandler):
            pass

        Handler.hub = hub
        self._serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler), "localhub")
        return self

    @property
    def endpoint(self) -> str:
        return self.url

    # ------------------------------------------------------------------------------------------------ queries
    def requested_repos(self, kinds: tuple[str, ...] = ("resolve",), ok_only: bool = True) -> set[str]:
        """``<type>:<id as requested>`` of every request of ``kinds`` that was answered (2xx, or 307 alias)."""
        return {r.repo for r in self.requests if r.repo and r.kind in kinds
                and (not ok_only or r.status < 300 or r.status == 307)}

    def downloaded_files(self) -> set[str]:
        """``<type>:<canonical id>/<path>`` of every file a GET served (200 or 206)."""
        return {f"{r.repo}/{r.path.split('/resolve/', 1)[1].split('/', 1)[1]}" for r in self.requests
                if r.kind == "resolve" and r.method == "GET" and r.status in (200, 206)}

    def summary(self) -> str:
        lines = [f"{len(self.requests)} requests"]
        for request in self.requests:
            lines.append(f"{request.status} {request.method:4} {request.path}")
        return "\n".join(lines)

    def _find(self, repo_type: str, rest: str) -> tuple[str, str | None, str]:
        """Split ``rest`` ("<id>/<suffix>") into (id as named, canonical id or None, suffix)."""
        for names in (self.aliases, {repo_id: repo_id for (kind, repo_id) in self.repos if kind == repo_type}):
            for name, canonical in sorted(names.items(), key=lambda item: -len(item[0])):
                if (rest == name or rest.startswith(name + "/")) and (repo_type, canonical) in self.repos:
                    return name, canonical, rest[len(name):]
        parts = rest.split("/")
        return "/".join(parts[:2]), None, "/" + "/".join(parts[2:])


class _HubHandler(BaseHTTPRequestHandler):
    hub: LocalHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet: the hub keeps its own record
        pass

    def do_HEAD(self):
        self._route("HEAD")

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    # ------------------------------------------------------------------------------------------------ routing
    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        body = b""
        if method == "POST":
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        api = re.match(r"^/api/(models|datasets)/(.+)$", path)
        resolve = re.match(r"^/(datasets/)?(.+?)/resolve/(.+)$", path)
        if api:
            repo_type, rest = api.group(1)[:-1], api.group(2)
        elif resolve:
            repo_type, rest = ("dataset" if resolve.group(1) else "model"), path[len(resolve.group(1) or "") + 1:]
        else:
            return self._reply(method, path, None, "other", 404, {"error": f"no route for {path}"})
        named, canonical, suffix = self.hub._find(repo_type, rest)
        label = f"{repo_type}:{named}"
        if canonical is None:
            return self._reply(method, path, label, "other", 404, {"error": "Repository not found"},
                               {"X-Error-Code": "RepoNotFound"})
        if named != canonical:  # a legacy id: 307 to the same URL with the current id, as the hub does
            moved = path.replace(f"/{named}", f"/{canonical}", 1)
            location = quote(moved) + (f"?{url.query}" if url.query else "")
            return self._reply(method, path, label, "redirect", 307, {"message": "moved"}, {"Location": location})
        repo = self.hub.repos[(repo_type, canonical)]
        if api:
            return self._api(method, path, label, repo, suffix, query, body)
        revision, _, file = suffix.removeprefix("/resolve/").partition("/")
        return self._resolve(method, path, label, repo, revision, file)

    def _api(self, method, path, label, repo: HubRepo, suffix: str, query: dict, body: bytes) -> None:
        expand = query.get("expand", ["false"])[0].lower() == "true"
        if suffix in ("", "/") or re.fullmatch(r"/revision/[^/]+", suffix):
            revision = suffix.rsplit("/", 1)[-1] if suffix.startswith("/revision/") else "main"
            if not self._known(revision, repo):
                return self._revision_missing(method, path, label, "api-info", repo)
            info = repo.info()
            info.pop("_plural")
            return self._reply(method, path, label, "api-info", 200, info)
        tree = re.fullmatch(r"/tree/([^/]+)(/.*)?", suffix)
        if tree:
            if not self._known(unquote(tree.group(1)), repo):
                return self._revision_missing(method, path, label, "tree", repo)
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            entries = repo.tree(tree.group(2) or "", recursive, expand)
            if entries is None:
                return self._reply(method, path, label, "tree", 404, {"error": "Entry not found"},
                                   {"X-Error-Code": "EntryNotFound"})
            return self._reply(method, path, label, "tree", 200, entries)
        info = re.fullmatch(r"/paths-info/([^/]+)", suffix)
        if info:
            if not self._known(unquote(info.group(1)), repo):
                return self._revision_missing(method, path, label, "paths-info", repo)
            paths = _form_or_json(body, self.headers.get("Content-Type", "")).get("paths", [])
            expand = expand or str(_form_or_json(body, "").get("expand", [""])[0]).lower() == "true"
            entries = [e for e in (repo.entry(p.strip("/"), expand) for p in paths) if e is not None]
            return self._reply(method, path, label, "paths-info", 200, entries)
        if re.fullmatch(r"/commits/[^/]+", suffix):
            commit = {"id": repo.sha, "title": "Stand-in for tests", "message": "", "date": COMMIT_DATE,
                      "authors": [{"user": "localhub"}]}
            return self._reply(method, path, label, "commits", 200, [commit])
        if suffix == "/refs":
            refs = {"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": repo.sha}],
                    "converts": [], "tags": []}
            return self._reply(method, path, label, "refs", 200, refs)
        if suffix == "/discussions":
            return self._reply(method, path, label, "discussions", 200,
                               {"discussions": [], "count": 0, "start": 0, "numClosedDiscussions": 0})
        return self._reply(method, path, label, "other", 404, {"error": f"no route for {suffix}"})

    def _resolve(self, method, path, label, repo: HubRepo, revision: str, file: str) -> None:
        revision = unquote(revision)
        if not self._known(revision, repo):
            return self._revision_missing(method, path, label, "resolve", repo)
        entry = repo.files.get(file)
        headers = {"X-Repo-Commit": repo.sha}
        if entry is None:
            return self._reply(method, path, label, "resolve", 404, {"error": "Entry not found"},
                               {**headers, "X-Error-Code": "EntryNotFound"})
        content = (repo.folder / file).read_bytes()
        etag = entry.sha256 if entry.lfs else entry.blob_id
        headers.update({"ETag": f'"{etag}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"})
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        status, ranged = 200, self.headers.get("Range")
        if ranged and method == "GET":
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", ranged.strip())
            if match:
                start = int(match.group(1)) if match.group(1) else max(0, len(content) - int(match.group(2)))
                end = int(match.group(2)) if match.group(1) and match.group(2) else len(content) - 1
                end = min(end, len(content) - 1)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
                content, status = content[start : end + 1], 206
        self._record(method, path, label, "resolve", status)
        self._send(method, status, content, headers)

    # ---------------------------------------------------------------------------------------------- replies
    @staticmethod
    def _known(revision: str, repo: HubRepo) -> bool:
        return revision in ("main", "refs/heads/main", repo.sha)

    def _revision_missing(self, method, path, label, kind, repo):
        return self._reply(method, path, label, kind, 404, {"error": "Revision not found"},
                           {"X-Error-Code": "RevisionNotFound", "X-Repo-Commit": repo.sha})

    def _record(self, method, path, label, kind, status) -> None:
        self.hub.requests.append(Request(method, path, status, label, kind))

    def _reply(self, method, path, label, kind, status, payload, headers=None) -> None:
        self._record(method, path, label, kind, status)
        body = json.dumps(payload).encode()
        self._send(method, status, body, {"Content-Type": "application/json", **(headers or {})})

    def _send(self, method: str, status: int, body: bytes, headers: dict) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)


def _form_or_json(body: bytes, content_type: str) -> dict[str, list]:
    """POST bodies: huggingface_hub sends paths-info as a form (paths=a&paths=b) or as JSON."""
    text = body.decode() if body else ""
    if text.startswith("{"):
        data = json.loads(text)
        return {key: value if isinstance(value, list) else [value] for key, value in data.items()}
    return parse_qs(text)


# ------------------------------------------------------------------------------------------ blocking proxy
class BlockingProxy(_Served):
    """An HTTP(S) proxy on 127.0.0.1 that refuses everything (403) and records the host of each attempt."""

    def __init__(self):
        self.attempts: list[str] = []

    def __enter__(self) -> BlockingProxy:
        attempts = self.attempts

        class Refuse(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline(8192).decode("latin-1").split()
                if len(line) >= 2:
                    target = line[1]
                    host = urlsplit(target).hostname if "://" in target else target.rsplit(":", 1)[0]
                    attempts.append(f"{line[0]} {host}")
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        self._serve(socketserver.ThreadingTCPServer(("127.0.0.1", 0), Refuse), "blocking-proxy")
        return self
