# Shared by every study's run.sh: the checkout root, the scale, where outputs go, the git
# revision, and copying a laptop report into the study folder. Source it; do not run it.
#   STUDY=cl-vs-ds; . "$(dirname "$0")/../lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCALE="${SCALE:-laptop}"
case "$SCALE" in
  laptop | gpu) ;;
  *)
    echo "SCALE=$SCALE: use SCALE=laptop (tiny model, CPU) or SCALE=gpu (the paper's setup)" >&2
    exit 2
    ;;
esac
# Every run of this study and scale lands here (git-ignored); never inside experiments/.
OUT="$ROOT/outputs/experiments/$STUDY/$SCALE"
mkdir -p "$OUT"
cd "$ROOT"

# The code revision the numbers come from, written next to the runs (and into the laptop
# report when it is copied): the commit, plus whether the work tree had uncommitted changes.
record_revision() {
  {
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
    if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
      echo "work tree: uncommitted changes to tracked files"
    else
      echo "work tree: clean"
    fi
    echo "scale: $SCALE"
    echo "started: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } >"$OUT/REVISION"
}

# Wall time of the whole driver, appended to REVISION when it finishes.
START_SECONDS=$SECONDS
finish() {
  local wall=$((SECONDS - START_SECONDS))
  echo "wall time: $((wall / 60)) min $((wall % 60)) s" >>"$OUT/REVISION"
  if [ "$SCALE" = laptop ] && [ -d "$ROOT/experiments/$STUDY/laptop-report" ]; then
    cp "$OUT/REVISION" "$ROOT/experiments/$STUDY/laptop-report/REVISION"
  fi
  echo "$STUDY ($SCALE) finished in $((wall / 60)) min $((wall % 60)) s; outputs in $OUT"
}

# magicoder-report on a sweep (or run) dir, into $OUT/report[/NAME]; at laptop scale, also
# copied into experiments/<study>/laptop-report[/NAME]/ (the only thing a driver writes into
# the study folder).
report() {
  local sweep="$1" name="${2:-}"
  local out="$OUT/report${name:+/$name}"
  magicoder-report "$sweep" --out "$out"
  if [ "$SCALE" = laptop ]; then
    local dest="$ROOT/experiments/$STUDY/laptop-report${name:+/$name}"
    rm -rf "$dest"
    mkdir -p "$dest"
    cp "$out"/*.md "$out"/*.csv "$out"/*.png "$dest"/ 2>/dev/null || true
  fi
}
