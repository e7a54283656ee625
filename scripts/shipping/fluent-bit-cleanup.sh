#!/usr/bin/env bash
# Deletes dcsd's finished event-log files that Fluent Bit has read to the end, according to
# the offsets its tail input keeps in its SQLite database (fluent-bit.yaml, `db`). Fluent
# Bit's tail input has no option to delete a file after reading it, hence this script; run it
# from cron every few minutes (docs/eventlog.md §7).
#
#   fluent-bit-cleanup.sh [DB]
#
# DB defaults to /var/lib/fluent-bit/dcsd-events.db. Environment:
#   DCSD_EVENTS_DIR  the daemon's eventlog.dir (default /var/log/dcsd/events)
#   MIN_AGE_S        only files unchanged for at least this long are considered (default 300):
#                    a margin for Fluent Bit to hand what it read to its outputs
#   DRY_RUN=1        print what would be deleted, delete nothing
#
# What "read to the end" means here: the offset Fluent Bit recorded for the file (table
# `in_tail_files`, columns `name` and `offset`) is past the file's last `\n`. Bytes after the
# last `\n` are a torn line (a crash cut it) that no reader uses, so they do not hold a file
# back.
#
# Be aware: the offset says what Fluent Bit has *read*, not what its outputs have delivered.
# Use `storage.type: filesystem` on the input (as fluent-bit.yaml does) so that what was read
# survives a Fluent Bit restart in its own buffer; records still in its buffer when this
# script deletes their file are then delivered from there. Fluent Bit removes a deleted file's
# row from its database itself. Start-up replay reads only the files still in the directory
# (docs/eventlog.md §5).
#
# Crontab (as a user that may read the database and delete in the directory):
#   */5 * * * * /usr/local/bin/fluent-bit-cleanup.sh 2>&1 | logger -t dcsd-ship
set -euo pipefail

db=${1:-/var/lib/fluent-bit/dcsd-events.db}
dir=${DCSD_EVENTS_DIR:-/var/log/dcsd/events}
min_age=${MIN_AGE_S:-300}
dir=${dir%/}

command -v sqlite3 >/dev/null || { echo "$0: sqlite3 not found (apt-get install sqlite3)" >&2; exit 69; }
[[ -r $db ]] || { echo "$0: $db: cannot read the Fluent Bit database" >&2; exit 66; }

now=$(date +%s)
# -readonly: never write Fluent Bit's database; the default busy timeout waits out its writes.
sqlite3 -readonly -batch -noheader -separator $'\t' "$db" \
  "SELECT name, offset FROM in_tail_files;" |
  while IFS=$'\t' read -r name offset; do
    # only this daemon's finished files, in this directory
    case $name in
    "$dir"/events-*.ndjson.done) ;;
    *) continue ;;
    esac
    [[ $offset =~ ^[0-9]+$ && -f $name ]] || continue
    read -r size mtime < <(stat -c '%s %Y' -- "$name") || continue
    ((now - mtime >= min_age)) || continue
    if ((offset < size)); then
      # unread bytes: a file is done only if none of them ends a line
      newlines=$(tail -c "$((size - offset))" -- "$name" | tr -dc '\n' | wc -c)
      ((newlines == 0)) || continue
    fi
    if [[ ${DRY_RUN:-0} == 1 ]]; then
      echo "would delete $name (read $offset of $size bytes)"
    else
      rm -f -- "$name"
    fi
  done
