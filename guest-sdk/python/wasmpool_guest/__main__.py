"""``python -m wasmpool_guest build SOURCE -o OUT.wasm``: see `build`."""

import sys

from .build import main

sys.exit(main(sys.argv[1:]))
