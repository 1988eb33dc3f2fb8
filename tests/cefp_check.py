"""Reads CEF lines written by cefwire with the third-party `cefp` parser and
checks every value against what the Rust test's contract model expects:
device version, signature, name, severity, and every extension key (no
missing key, no extra key).

Usage: python cefp_check.py CASES.json
CASES.json is a list of {"line", "version", "signature", "name", "severity",
"extension": {key: value}}.
"""

import json
import sys

import cefp


def main(path):
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)
    failures = []
    for n, case in enumerate(cases):
        line = case["line"]
        parsed = cefp.parse(line[line.index("CEF:"):])
        got = {
            "version": parsed["device"]["version"],
            "signature": parsed["device"]["event_class_id"],
            "name": parsed["name"],
            "severity": parsed["severity"],
        }
        want = {key: case[key] for key in got}
        if got != want:
            failures.append((n, "header", want, got, line))
        extension = parsed["extension"]
        for key, value in case["extension"].items():
            if extension.get(key) != value:
                failures.append((n, key, value, extension.get(key), line))
        extra = sorted(set(extension) - set(case["extension"]))
        if extra:
            failures.append((n, "extra keys", [], extra, line))
    for failure in failures[:10]:
        print("case %d key %s: expected %r got %r\n  line: %r" % failure)
    if failures:
        print("%d mismatches" % len(failures))
        return 1
    print("%d lines ok" % len(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
