#!/usr/bin/env python3
"""Draws the level / edge / oneshot timeline as SVG from the JSON that
`cargo run --example triggers -- --emit json` prints (stdin → stdout).

One row per trigger, one column per round: a filled box where that round's
poll reported the socket (with the flags), an empty one where it did not,
and under each box the bytes still unread after the round.
"""
import json
import sys
import textwrap
from html import escape

run = json.load(sys.stdin)
rounds = run["rounds"]
triggers = run["triggers"]

LEFT, TOP, COL, ROW = 110, 96, 120, 74
BOX_W, BOX_H = 108, 34
width = LEFT + COL * len(rounds) + 16
height = TOP + ROW * len(triggers) + 44
COLOURS = {"level": "#4878a8", "edge": "#c8702a", "oneshot": "#5a9a5a"}

out = []
add = out.append
add(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
    f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Verdana, sans-serif">')
add(f'<rect width="{width}" height="{height}" fill="white"/>')
add(f'<text x="{width / 2}" y="22" font-size="15" text-anchor="middle" font-weight="bold">'
    f'What one poll per round reports ({escape(run["backend"])}; 2 bytes read per report)</text>')
for i, step in enumerate(rounds):
    x = LEFT + COL * i + COL / 2
    add(f'<text x="{x}" y="46" font-size="12" text-anchor="middle" font-weight="bold">round {i + 1}</text>')
    for j, line in enumerate(textwrap.wrap(step, 17)[:3]):
        add(f'<text x="{x}" y="{61 + 12 * j}" font-size="10" text-anchor="middle" fill="#444">{escape(line)}</text>')
for r, t in enumerate(triggers):
    y = TOP + ROW * r
    colour = COLOURS.get(t["trigger"], "#777")
    add(f'<text x="{LEFT - 12}" y="{y + BOX_H / 2 + 5}" font-size="14" text-anchor="end" '
        f'font-weight="bold" fill="{colour}">{escape(t["trigger"])}</text>')
    if not t["registered"]:
        add(f'<text x="{LEFT + 8}" y="{y + BOX_H / 2 + 5}" font-size="12" fill="#777">'
            f'not registered: {escape(run["backend"])} has no {escape(t["trigger"])} triggering</text>')
        continue
    add(f'<line x1="{LEFT}" y1="{y + BOX_H / 2}" x2="{LEFT + COL * len(rounds)}" '
        f'y2="{y + BOX_H / 2}" stroke="#ddd" stroke-width="2"/>')
    for i, (event, unread) in enumerate(zip(t["events"], t["unread"])):
        x = LEFT + COL * i + (COL - BOX_W) / 2
        if event == "-":
            add(f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="white" '
                f'stroke="{colour}" stroke-dasharray="4 3"/>')
            add(f'<text x="{x + BOX_W / 2}" y="{y + BOX_H / 2 + 4}" font-size="11" '
                f'text-anchor="middle" fill="#999">no event</text>')
        else:
            add(f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{colour}"/>')
            add(f'<text x="{x + BOX_W / 2}" y="{y + BOX_H / 2 + 4}" font-size="11" '
                f'text-anchor="middle" fill="white" font-weight="bold">{escape(event)}</text>')
        add(f'<text x="{x + BOX_W / 2}" y="{y + BOX_H + 15}" font-size="10" text-anchor="middle" '
            f'fill="#444">{unread} B unread</text>')
add(f'<text x="{LEFT}" y="{height - 12}" font-size="10" fill="#666">drawn from '
    f'"cargo run --example triggers -- --emit json" by docs/pictures/timeline.py</text>')
add('</svg>')
print("\n".join(out))
