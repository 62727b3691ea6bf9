"""Entry point of one Procrastinate worker process of the peer bench: `python -m bench.peer_worker N`."""

import sys

from bench import peer

if __name__ == "__main__":
    peer.worker_main(int(sys.argv[1]))
