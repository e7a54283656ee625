#!/usr/bin/env bash
# Moves dcsd's finished event-log files (docs/eventlog.md §7) to another machine or to S3,
# deleting each local file only after it was copied successfully. Safe to run from cron every
# minute: a run that finds the previous one still going exits at once (flock), and a run cut
# short (network, reboot) leaves every file it did not finish where it was, for the next run.
#
#   rsync-cron.sh DEST
#
# DEST is one of
#   /srv/dcsd-events/           a local directory (another disk, an NFS mount)
#   backup:/srv/dcsd/edge-1/    an rsync destination over ssh (key-based login, no prompt)
#   s3://bucket/dcsd/edge-1/    an S3 prefix, through `aws s3 mv` (the AWS CLI, its usual
#                               credentials: instance role, AWS_PROFILE, ...)
# Give each box its own DEST (e.g. end it with "$(hostname -s)/"): file names are unique per
# box, not across boxes.
#
# Environment:
#   DCSD_EVENTS_DIR  the daemon's eventlog.dir (default /var/log/dcsd/events)
#   LOCK_FILE        the lock (default /run/lock/dcsd-ship-events.lock, or under /tmp when
#                    /run/lock is not writable)
#
# Only `events-*.ndjson.done` files are touched: the daemon never writes to a `.done` file
# again. Open files (`.ndjson`) stay until dcsd finishes them (rotation, shutdown, or the next
# start-up after a crash). Note that start-up replay reads the files still in the directory
# (docs/eventlog.md §5): ship no faster than snapshots are taken if replay must see them.
#
# Crontab (as the user that owns the directory):
#   * * * * * /usr/local/bin/rsync-cron.sh "backup:/srv/dcsd/$(hostname -s)/" 2>&1 | logger -t dcsd-ship
set -euo pipefail

usage() {
  echo "usage: $0 DEST   (a directory, HOST:PATH/ or s3://BUCKET/PREFIX/)" >&2
  exit 64
}
[[ $# -eq 1 && -n $1 ]] || usage
dest=$1
src=${DCSD_EVENTS_DIR:-/var/log/dcsd/events}

if [[ -z ${LOCK_FILE:-} ]]; then
  LOCK_FILE=/run/lock/dcsd-ship-events.lock
  [[ -w ${LOCK_FILE%/*} ]] || LOCK_FILE=${TMPDIR:-/tmp}/dcsd-ship-events.lock
fi
exec 9>>"$LOCK_FILE"
if ! flock -n 9; then
  exit 0 # the previous run is still moving files
fi

[[ -d $src ]] || { echo "$0: $src: no such directory" >&2; exit 66; }
shopt -s nullglob
files=("$src"/events-*.ndjson.done)
((${#files[@]})) || exit 0

case $dest in
s3://*)
  # `aws s3 mv` uploads, then deletes the local file only when the upload succeeded. One call
  # per file, so that a failure leaves exactly the files not yet uploaded.
  failed=0
  for f in "${files[@]}"; do
    if ! aws s3 mv --only-show-errors "$f" "${dest%/}/${f##*/}" 9>&-; then
      echo "$0: $f: upload failed, kept for the next run" >&2
      failed=1
    fi
  done
  exit "$failed"
  ;;
*)
  # rsync writes each file under a temporary name and renames it when complete, then
  # --remove-source-files deletes exactly the source files that arrived whole (a file already
  # at DEST with the same size and time counts as arrived, so a run interrupted between the copy
  # and the delete finishes the job next time). The lock stays with this script (9>&-): an rsync
  # child lingering after a failure does not hold it.
  rsync --archive --remove-source-files --timeout=300 -- "${files[@]}" "${dest%/}/" 9>&-
  ;;
esac
