# shellcheck shell=bash
# report_errors TAG: when `set -e` stops the script at a command nobody
# checked, say which command, where, and its exit status, instead of ending
# without a word. Only shells that stop say it (a command substitution
# without errexit goes on, so it stays quiet; the assignment that used it
# is reported instead). Sourced by rbuilds.sh and its tests.
report_errors() {
    ERRTRAP_TAG=$1
    set -E
    trap 'errtrap_report $? "$LINENO" "$BASH_COMMAND"' ERR
}

errtrap_report() {
    local status=$1 line=$2 command=$3
    [[ $- == *e* ]] || return 0
    # (the backquotes are printed around the failed command, not run)
    # shellcheck disable=SC2016
    printf '[%s] ERROR: %s:%s: `%s` failed (exit status %s)\n' \
        "$ERRTRAP_TAG" "${BASH_SOURCE[1]##*/}" "$line" "$command" "$status" >&2
}
