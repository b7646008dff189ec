#!/usr/bin/env python3
"""Turns a .cu (or .cuh) file into C++ for the CUDA emulator (emu.h):
    python3 translate.py in.cu out.cpp

Once emu.h (included first) has defined CUDA's qualifiers away, only two constructs of CUDA C++
are not C++, so only they are rewritten, each within its own lines (a #line directive then points
compiler errors and debuggers at the original file):

  kernel<<<grid, block, shared, stream>>>(args)
      -> emu::launch("kernel (file.cu:123)", emu::Config(grid, block, shared, stream),
                     [=](auto... a_) { kernel(a_...); }, args)
     The lambda names the kernel, so a template (its arguments deduced from the launch's, as in
     the launch), an overload or a function pointer all work; the string names it in messages.
  extern __shared__ __align__(16) float smem[];
      -> float* smem = reinterpret_cast<float*>(emu::dynamic_shared());

Comments and string literals are never rewritten.
"""
import os
import re
import sys

SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([\w:<>, ]+?)\s+"
                    r"(?:__align__\(\s*\d+\s*\)\s+)?(\w+)\s*\[\s*\]\s*;")


def blank_comments_and_literals(text):
    """text with comments and string/char literals turned into spaces (newlines kept), so that
    positions in it are positions in text."""
    out, i, n = list(text), 0, len(text)
    while i < n:
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
        elif text[i] in "\"'" and not (text[i] == "'" and i > 0 and text[i - 1].isalnum()):  # not a digit separator
            end = i + 1
            while end < n and text[end] != text[i]:
                end += 2 if text[end] == "\\" else 1
            end += 1
        else:
            i += 1
            continue
        for k in range(i, min(end, n)):
            if out[k] != "\n":
                out[k] = " "
        i = end
    return "".join(out)


def one_line(code):
    return re.sub(r"\s+", " ", code).strip()


def kernel_start(code, end):
    """Where the kernel expression ending at `end` begins: an identifier, maybe qualified, maybe
    with template arguments (anything inside balanced angle brackets)."""
    k, depth = end, 0
    while k > 0:
        c = code[k - 1]
        if c == ">":
            depth += 1
        elif c == "<":
            depth -= 1
        elif depth == 0 and not (c.isalnum() or c in "_:"):
            break
        k -= 1
    return k


def edits(code, source):
    """(start, end, replacement) for every construct to rewrite, found in the blanked code."""
    found = []
    for m in SHARED.finditer(code):
        found.append((m.start(), m.end(), "%s* %s = reinterpret_cast<%s*>(emu::dynamic_shared());" % (m.group(1), m.group(2), m.group(1))))
    i = 0
    while (j := code.find("<<<", i)) >= 0:
        name_end = j
        while code[name_end - 1].isspace():
            name_end -= 1
        start = kernel_start(code, name_end)
        close = code.find(">>>", j)
        paren = close + 3
        while paren < len(code) and code[paren].isspace():
            paren += 1
        if close < 0 or paren >= len(code) or code[paren] != "(" or start == name_end:
            sys.exit("translate.py: cannot read the launch at: " + one_line(code[start:j + 80]))
        rest = paren + 1
        while code[rest].isspace():
            rest += 1
        kernel = one_line(code[start:name_end])
        comma = "" if code[rest] == ")" else ", "  # a kernel without parameters
        label = "%s (%s:%d)" % (kernel, source, code.count("\n", 0, start) + 1)  # for the emulator's messages
        found.append((start, paren + 1, 'emu::launch("%s", emu::Config(%s), [=](auto... a_) { %s(a_...); }%s' %
                      (label, one_line(code[j + 3:close]), kernel, comma)))
        i = paren + 1
    return sorted(found)


def translate(text, source):
    out, previous = [], 0
    for start, end, replacement in edits(blank_comments_and_literals(text), source):
        out.append(text[previous:start])
        out.append(replacement + "\n" * text.count("\n", start, end))  # later lines keep their numbers
        previous = end
    out.append(text[previous:])
    return "".join(out)


def main():
    source, target = sys.argv[1], sys.argv[2]
    with open(source, encoding="utf-8") as f:
        text = f.read()
    with open(target, "w", encoding="utf-8") as f:
        f.write('#include "emu.h"\n#line 1 "%s"\n' % source.replace("\\", "/"))
        f.write(translate(text, os.path.basename(source)))


if __name__ == "__main__":
    main()
