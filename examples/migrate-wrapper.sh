#!/usr/bin/env bash
# A gate in front of virsh migrate, for an existing migration script.
#
#   examples/migrate-wrapper.sh SRC DST VM [virsh migrate flags...]
#
# Either let migcheck run the migration itself (it refuses unless the verdict is ok):
#   migcheck migrate "$SRC" "$DST" "$VM" --live --persistent --undefinesource
# or keep your own virsh call and ask migcheck first, reading its exit code and JSON:
set -euo pipefail
src=$1 dst=$2 vm=$3; shift 3

report=$(mktemp)
trap 'rm -f "$report"' EXIT
set +e
migcheck "$src" "$dst" "$vm" "$@" --format json >"$report"
verdict_code=$?
set -e

case $verdict_code in
  0) ;;                                   # ok: go ahead
  4) echo "risky, not migrating automatically:" >&2 ;;
  1) echo "blocked:" >&2 ;;
  3) echo "could not check (host unreachable, timeout, ...): not migrating" >&2 ;;
  *) echo "migcheck usage error" >&2; exit 2 ;;
esac
if [ "$verdict_code" -ne 0 ]; then
  # one line per blocking or unknown finding, with its fix (python3 is on every libvirt host)
  python3 - "$report" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1]))
for f in r.get("findings", []):
    if f["severity"] in ("block", "risk", "unknown"):
        print(f"  {f['severity']:7} {f['rule']}: {f['message']}\n          fix: {f.get('fix')}")
PY
  exit "$verdict_code"
fi

# the same flags, exactly as checked; the guest name is one argument, never parsed by a shell
exec virsh -c "qemu+ssh://root@${src}/system" migrate "$@" -- "$vm" "qemu+ssh://root@${dst}/system"
