"""The QEMU command line of a running guest -> facts.

The running process is the truth about what the guest sees: libvirt's XML may
say one thing while QEMU was started (by an older libvirt, or before an edit)
with another.
"""

from __future__ import annotations

from migcheck.facts.models import QemuCommandLine, QemuCpuArg

MAX_CMDLINE_BYTES = 4 * 1024 * 1024


def split_qemu_opts(value: str) -> list[str]:
    """Split a QEMU option value on commas; ``,,`` is an escaped comma."""
    parts, current, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == ",":
            if i + 1 < len(value) and value[i + 1] == ",":
                current.append(",")
                i += 2
                continue
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def parse_cpu_arg(value: str) -> QemuCpuArg:
    model, *rest = split_qemu_opts(value)
    props: dict[str, str] = {}
    for item in rest:
        if not item:
            continue
        if item[0] in "+-" and "=" not in item:
            props[item[1:].replace("_", "-")] = "on" if item[0] == "+" else "off"
        elif "=" in item:
            key, val = item.split("=", 1)
            props[key.replace("_", "-")] = val
        else:
            props[item.replace("_", "-")] = "on"
    if "tsc-freq" in props and "tsc-frequency" not in props:
        props["tsc-frequency"] = props["tsc-freq"]
    return QemuCpuArg(model=model, props=props)


def decode_proc_cmdline(raw: bytes) -> list[str]:
    """``/proc/PID/cmdline`` (NUL-separated) -> argv. Raises ValueError on garbage."""
    if len(raw) > MAX_CMDLINE_BYTES:
        raise ValueError(f"command line is {len(raw)} bytes, more than {MAX_CMDLINE_BYTES}")
    if not raw:
        raise ValueError("command line is empty (the process may have exited)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"command line is not UTF-8 at byte {exc.start}") from exc
    return text.rstrip("\0").split("\0")


def parse_qemu_argv(argv: list[str]) -> QemuCommandLine:
    out = QemuCommandLine(argv=list(argv), binary=argv[0] if argv else None)
    i = 1
    while i < len(argv):
        opt = argv[i]
        value = argv[i + 1] if i + 1 < len(argv) else None
        norm = opt[1:] if opt.startswith("--") else opt
        if norm == "-cpu" and value is not None:
            out.cpu = parse_cpu_arg(value)
            i += 2
            continue
        if norm in ("-machine", "-M") and value is not None:
            fields = split_qemu_opts(value)
            for n, field in enumerate(fields):
                if "=" in field:
                    key, val = field.split("=", 1)
                    if key == "type":
                        out.machine = val
                    elif key == "accel":
                        out.accel = val.split(":")[0]
                elif n == 0:
                    out.machine = field
            i += 2
            continue
        if norm == "-accel" and value is not None:
            accel = split_qemu_opts(value)[0]
            out.accel = accel.split("=", 1)[1] if accel.startswith("accel=") else accel
            i += 2
            continue
        if norm == "-enable-kvm":
            out.accel = "kvm"
        i += 1
    return out
