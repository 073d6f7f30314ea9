"""The rendition job as its own process, so that it never slows a live lesson:

    python -m recorder.process ARCHIVE_DIR OUTPUT_DIR [--threads N] [--nice N]

It lowers its own priority first. Exit status: 0 when the outputs are current
(made now or before), 1 when the job failed (status.json says why), 75 when another
job holds the output directory.
"""

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from recorder.renditions import NothingRecordedError, RenditionJob
from recorder.status import JobBusyError, job_lock

EXIT_FAILED = 1
EXIT_BUSY = 75  # EX_TEMPFAIL: try again later


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recorder.process", description=__doc__)
    parser.add_argument("archive", type=Path, help="the lesson's archive directory")
    parser.add_argument("output", type=Path, help="where the renditions go")
    parser.add_argument("--threads", type=int, default=1, help="encoder threads (default 1)")
    parser.add_argument("--nice", type=int, default=10, help="niceness to add (default 10)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.nice > 0:
        os.nice(args.nice)
    try:
        with job_lock(args.output):
            outcome = RenditionJob(args.archive, args.output, threads=args.threads).run()
    except JobBusyError as exc:
        print(f"busy: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except NothingRecordedError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception:
        logging.getLogger(__name__).exception("the job on %s failed", args.archive)
        return EXIT_FAILED
    print(outcome, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
