#!/usr/bin/env bash
# The docs as docs.rs builds them ([package.metadata.docs.rs]: every feature, `--cfg docsrs`, so
# `doc_cfg` labels each gated item), warnings denied; then checks that every store behind a
# feature carries its "Available on crate feature" label. RUSTC_BOOTSTRAP lets the stable
# toolchain build what docs.rs builds with nightly.
set -euo pipefail
cd "$(dirname "$0")/.."

RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="--cfg docsrs -D warnings" cargo doc --all-features --no-deps
DOC=target/doc/server_session
for pair in redis:RedisStore redis-cluster:RedisClusterStore memcached:MemcachedStore \
  sqlite:SqliteStore postgres:PostgresStore sqlite:SqlStore postgres:SqlStore mongodb:MongoStore; do
  feature=${pair%%:*} store=${pair#*:}
  page=$DOC/store/struct.$store.html
  [ -e "$page" ] || page=$DOC/store/type.$store.html # SqliteStore = SqlStore<Sqlite>
  if ! grep -qs "Available on <strong>crate features\? [^.]*<code>$feature</code>" "$page"; then
    echo "docs.sh: no page for $store with a label for feature $feature" >&2
    exit 1
  fi
done
echo "docs.sh: every feature-gated store is labelled"
