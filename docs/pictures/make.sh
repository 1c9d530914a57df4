#!/bin/sh
# Regenerates every picture of the guide (run from anywhere):
#
#     docs/pictures/make.sh            # the SVGs in docs/pictures/
#     docs/pictures/make.sh --png DIR  # also a PNG of each in DIR, to look at
#
# Needs graphviz (`dot`) and python3; --png needs rsvg-convert
# (Debian: apt-get install graphviz librsvg2-bin; CJK labels need a CJK
# font such as fonts-wqy-microhei to be measured and drawn).
#
# - every *.dot here → the .svg of the same name (graphviz dot);
# - triggers-timeline.svg ← timeline.py ← triggers.json ← a real run of
#   `cargo run --example triggers -- --emit json`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
for source in *.dot; do
    dot -Tsvg "$source" -o "${source%.dot}.svg"
done
(cd ../.. && cargo run -q --example triggers -- --emit json) > triggers.json
python3 timeline.py < triggers.json > triggers-timeline.svg
if [ "${1:-}" = "--png" ]; then
    out=${2:?--png needs a directory}
    mkdir -p "$out"
    for picture in *.svg; do
        rsvg-convert "$picture" -o "$out/${picture%.svg}.png"
    done
    echo "PNGs in $out"
fi
echo "regenerated: $(ls *.svg | tr '\n' ' ')"
