#!/usr/bin/env bash
# Create a SoftHSM token for the appliance, idempotently.
#
#   HSM_SO_PIN=... HSM_USER_PIN=... hsm/init-token.sh --dir DIR --label LABEL
#   hsm/init-token.sh --dir DIR --label LABEL --so-pin-file FILE --pin-file FILE
#   ... --partitions N     also the device-key tokens LABEL-p00 .. LABEL-p<N-1>, same PINs
#
# Writes DIR/softhsm2.conf (from softhsm2.conf.template, unless it exists), creates DIR/tokens
# and initialises a token labelled LABEL there, unless a token with that label already exists
# (then nothing changes, PINs included). PINs come from the environment or from files (first
# line) and reach softhsm2-util through a pseudo-terminal, never through its command line, so
# they do not show up in `ps`. Needs softhsm2-util and script(1) (util-linux).
set -euo pipefail

usage() {
    sed -n '2,14s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

die() {
    echo "init-token.sh: $*" >&2
    exit 1
}

dir="" label="" so_pin_file="" pin_file="" partitions=0
while (($#)); do
    case "$1" in
        --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
        --label) label="${2:?--label needs a value}"; shift 2 ;;
        --so-pin-file) so_pin_file="${2:?--so-pin-file needs a value}"; shift 2 ;;
        --pin-file) pin_file="${2:?--pin-file needs a value}"; shift 2 ;;
        --partitions) partitions="${2:?--partitions needs a value}"; shift 2 ;;
        -h | --help) usage ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ -n "$dir" && -n "$label" ]] || usage
[[ "$partitions" =~ ^[0-9]+$ ]] && ((partitions <= 100)) || die "--partitions takes 0 to 100"
labels=("$label")
for ((index = 0; index < partitions; index++)); do
    labels+=("$(printf '%s-p%02d' "$label" "$index")")  # as appliance.hsm.provision.partition_label
done
for name in "${labels[@]}"; do
    ((${#name} <= 32)) || die "a token label has at most 32 characters: $name"
done
command -v softhsm2-util >/dev/null || die "softhsm2-util not found (apt-get install softhsm2)"
command -v script >/dev/null || die "script not found (it is part of util-linux/bsdutils)"

# read_pin NAME VARIABLE FILE: the PIN from FILE's first line if given, else from $VARIABLE.
read_pin() {
    local name="$1" variable="$2" file="$3" value=""
    if [[ -n "$file" ]]; then
        [[ -r "$file" ]] || die "$name PIN file $file is not readable"
        IFS= read -r value <"$file" || [[ -n "$value" ]] || die "$name PIN file $file is empty"
    else
        value="${!variable:-}"
        [[ -n "$value" ]] || die "give the $name PIN in \$$variable or with --${4}"
    fi
    # softhsm2-util asks again and again for a PIN of the wrong length; refuse it here instead.
    ((${#value} >= 4 && ${#value} <= 255)) || die "the $name PIN must have 4 to 255 characters"
    printf '%s' "$value"
}

umask 077
mkdir -p "$dir/tokens"
dir="$(cd "$dir" && pwd -P)"
conf="$dir/softhsm2.conf"
if [[ ! -e "$conf" ]]; then
    template="$(dirname "$0")/softhsm2.conf.template"
    [[ -r "$template" ]] || die "template $template not found"
    content="$(<"$template")"
    # Quoted replacement: bash 5.2 would otherwise expand '&' in a path to the matched text.
    printf '%s\n' "${content//@TOKEN_DIR@/"$dir/tokens"}" >"$conf"
fi
export SOFTHSM2_CONF="$conf"

existing_labels() {
    softhsm2-util --show-slots | sed -n 's/^[[:space:]]*Label:[[:space:]]*//p' | sed 's/[[:space:]]*$//'
}

# ensure_token LABEL: initialise the token unless it exists (PINs are read only when needed).
ensure_token() {
    local label="$1"
    if existing_labels | grep -qxF -- "$label"; then
        echo "token '$label' already exists in $dir/tokens; kept as it is" >&2
    else
        [[ -n "$so_pin" ]] || so_pin="$(read_pin "SO" HSM_SO_PIN "$so_pin_file" so-pin-file)"
        [[ -n "$user_pin" ]] || user_pin="$(read_pin "user" HSM_USER_PIN "$pin_file" pin-file)"
        log="$(mktemp)"
        trap 'rm -f "$log"' EXIT
        # printf is a shell builtin: the PINs go down the pipe without ever being an argument.
        if ! printf '%s\n%s\n%s\n%s\n' "$so_pin" "$so_pin" "$user_pin" "$user_pin" |
            timeout 60 script -qec "softhsm2-util --init-token --free --label $(printf '%q' "$label")" /dev/null >"$log"; then
            # The terminal echoes what was typed; show only softhsm2-util's own error lines.
            grep -a '^ERROR' "$log" >&2 || true
            die "softhsm2-util could not initialise token '$label'"
        fi
        existing_labels | grep -qxF -- "$label" || die "token '$label' did not appear after initialisation"
        rm -f "$log"
        echo "token '$label' created in $dir/tokens" >&2
    fi
}

so_pin="" user_pin=""
for name in "${labels[@]}"; do
    ensure_token "$name"
done
echo "SOFTHSM2_CONF=$conf"
