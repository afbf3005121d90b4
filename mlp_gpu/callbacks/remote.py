"""``RemoteMonitor``: each epoch's logs POSTed to a server as JSON, as Keras does, through the standard
library (urllib) where Keras needs ``requests``."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import warnings

import numpy as np

from .callback import Callback

TIMEOUT_S = 10  # a server that never answers must not hang training (Keras waits forever)


def _check_str(value, arg):
    if not isinstance(value, str):
        raise TypeError(f"RemoteMonitor({arg}): expected a str, got {type(value).__name__} {value!r}")
    return value


class RemoteMonitor(Callback):
    """POST ``{"epoch": epoch, **logs}`` to ``root + path`` after each epoch.

    As in Keras: with ``send_as_json`` the body is that JSON (``Content-Type: application/json``); otherwise
    it is a form whose ``field`` holds the JSON. ``headers`` are added to the request. A server that cannot
    be reached is a warning ("Could not reach RemoteMonitor root server at ..."), never a failed fit.
    """

    chief_only = True

    def __init__(self, root="http://localhost:9000", path="/publish/epoch/end/", field="data", headers=None,
                 send_as_json=False):
        super().__init__()
        self.root, self.path = _check_str(root, "root"), _check_str(path, "path")
        self.field = _check_str(field, "field")
        if urllib.parse.urlsplit(root + path).scheme not in ("http", "https"):
            raise ValueError(f"RemoteMonitor(root): expected an http:// or https:// address, got {root!r}")
        if headers is not None and (not isinstance(headers, dict)
                                    or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())):
            raise TypeError(f"RemoteMonitor(headers): expected None or a dict of str to str, got {headers!r}")
        if not isinstance(send_as_json, bool):
            raise TypeError(f"RemoteMonitor(send_as_json): expected True or False, got {send_as_json!r}")
        self.headers, self.send_as_json = headers, send_as_json

    def payload(self, epoch, logs) -> tuple[bytes, str]:
        """The request body and its content type, as Keras (through requests) sends them."""
        send = {"epoch": epoch}
        for key, value in (logs or {}).items():
            send[key] = value.item() if isinstance(value, (np.ndarray, np.generic)) else value
        if self.send_as_json:
            return json.dumps(send).encode(), "application/json"
        return urllib.parse.urlencode({self.field: json.dumps(send)}).encode(), "application/x-www-form-urlencoded"

    def on_epoch_end(self, epoch, logs=None):
        body, content_type = self.payload(epoch, logs)
        request = urllib.request.Request(self.root + self.path, data=body, method="POST",
                                         headers={"Content-Type": content_type, **(self.headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                response.read()
        except urllib.error.HTTPError as exc:  # reached, but refused: say what it answered
            warnings.warn(f"RemoteMonitor: the server at {self.root + self.path} answered {exc.code} {exc.reason}",
                          stacklevel=2)
        except (urllib.error.URLError, OSError, ValueError):
            warnings.warn(f"Could not reach RemoteMonitor root server at {self.root}", stacklevel=2)
