"""`zatca-appliance hsm init|list|check`: the token, as the administrator sees it.

`list` prints each key's CKA_ID in hex, the value `pkcs11-tool --id` takes, and the protection
flags as the token reports them (not as the appliance intended them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from appliance.cli.common import add_token_options, hsm_settings_from_args
from appliance.errors import HsmError


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser("hsm", help="the PKCS#11 token: development token, keys, capabilities")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    init = actions.add_parser("init", help="create the SoftHSM development token (kept if it exists)")
    init.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".appliance-dev"),
        help="directory for the token, its configuration and PIN files (default: ./.appliance-dev)",
    )
    # Resolved in the handler: importing appliance.hsm here would load python-pkcs11 for every command.
    init.add_argument("--label", help="token label (default: zatca-appliance-dev)")
    init.add_argument(
        "--partitions",
        type=int,
        default=0,
        help="also create N partition tokens <label>-p00.. that hold the device keys, so that each "
        "token's O(objects) costs stay bounded (about 1,000 keys per partition; default: 0)",
    )
    init.set_defaults(handler=_init)

    listing = actions.add_parser("list", help="device keys in the token, with the token's protection flags")
    add_token_options(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_list)

    check = actions.add_parser("check", help="can the token do what the appliance needs? (exit 1 if not)")
    add_token_options(check)
    check.set_defaults(handler=_check)


def _init(args: argparse.Namespace) -> int:
    import yaml

    from appliance.hsm.provision import DEFAULT_DEV_LABEL, ensure_dev_token

    settings = ensure_dev_token(args.data_dir, args.label or DEFAULT_DEV_LABEL, partitions=args.partitions)
    hsm = {
        name: getattr(settings, name)
        for name in ("module", "token_label", "partition_labels", "pin_file", "softhsm_conf")
        if getattr(settings, name)
    }
    print(f"token '{settings.token_label}' is ready; put this into the configuration file:\n")
    print(yaml.safe_dump({"hsm": hsm}, sort_keys=False), end="")
    print(f"\nfor pkcs11-tool and softhsm2-util:\n  export SOFTHSM2_CONF={settings.softhsm_conf}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from appliance.hsm import KeyStore

    store = KeyStore.open(hsm_settings_from_args(args))
    try:
        keys = store.list_device_keys()
        token_label = store.token_label
    finally:
        store.close()
    if args.json:
        import msgspec

        print(msgspec.json.format(msgspec.json.encode(keys)).decode())
        return 0
    if not keys:
        print(f"no device keys on token '{token_label}'")
        return 0
    header = (
        "DEVICE ID",
        "CKA_ID",
        "LABEL",
        "POLICY",
        "SENSITIVE",
        "EXTRACTABLE",
        "ALWAYS_SENSITIVE",
        "NEVER_EXTRACTABLE",
        "LOCAL",
    )
    rows = [
        (
            str(key.device_id),
            key.key_id_hex,
            key.label,
            str(key.policy),
            *(
                _yes_no(flag)
                for flag in (
                    key.sensitive,
                    key.extractable,
                    key.always_sensitive,
                    key.never_extractable,
                    key.local,
                )
            ),
        )
        for key in keys
    ]
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _check(args: argparse.Namespace) -> int:
    from appliance.hsm import KeyStore

    settings = hsm_settings_from_args(args)
    try:
        store = KeyStore.open(settings)
        try:
            report = store.check()
        finally:
            store.close()
    except HsmError as exc:
        print(f"token check failed: {exc}", file=sys.stderr)
        return 1
    lines = (
        ("module", report.module),
        ("token", report.token_label),
        ("login", _ok(report.logged_in)),
        ("secp256k1 keygen", _ok(report.secp256k1_keygen)),
        ("ECDSA signing", _ok(report.ecdsa, "CKM_ECDSA")),
        (
            "ECDSA-SHA256",
            "offered (CKM_ECDSA_SHA256)"
            if report.ecdsa_sha256
            else "not offered (not needed: the appliance hashes, then signs with CKM_ECDSA)",
        ),
        ("key export wrap", _ok(report.aes_key_wrap_pad, "CKM_AES_KEY_WRAP_PAD")),
    )
    for name, value in lines:
        print(f"{name + ':':<18}{value}")
    if report.ok:
        print("result: ok")
        return 0
    print("result: problems found", file=sys.stderr)
    for problem in report.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def _ok(present: bool, mechanism: str = "") -> str:
    suffix = f" ({mechanism})" if mechanism else ""
    return f"ok{suffix}" if present else f"MISSING{suffix}"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"
