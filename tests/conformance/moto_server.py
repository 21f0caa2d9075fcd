"""moto's server, with S3 object requests made atomic.

moto checks `If-None-Match: *` and `If-Match` and then writes, as two steps, while its server
handles requests on several threads: two conditional writes racing for one key can both
succeed, which real S3 never allows (conditional writes are atomic there). ferry's audit log,
state and locks rely on that guarantee, so the test harness serializes S3 object requests to
give moto S3's semantics. Everything else is moto as shipped.
"""

import sys
import threading

from moto.s3.responses import S3Response

_lock = threading.RLock()
_key_response = S3Response.key_response


def _atomic_key_response(self, *args, **kwargs):
    with _lock:
        return _key_response(self, *args, **kwargs)


S3Response.key_response = _atomic_key_response

from moto.server import main  # noqa: E402  (after the patch, on purpose)

if __name__ == "__main__":
    sys.exit(main())
