#!/usr/bin/env bash
# The docs as docs.rs builds them ([package.metadata.docs.rs]: every feature, `--cfg docsrs`, so
# `doc_cfg` labels each gated item), warnings denied; then checks that every store and codec
# behind a feature carries its "Available on crate feature" label. RUSTC_BOOTSTRAP lets the stable
# toolchain build what docs.rs builds with nightly.
set -euo pipefail
cd "$(dirname "$0")/.."

RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="--cfg docsrs -D warnings" cargo doc --all-features --no-deps
DOC=target/doc/server_session
# feature:module/Item
for pair in redis:store/RedisStore redis-cluster:store/RedisClusterStore \
  memcached:store/MemcachedStore sqlite:store/SqliteStore postgres:store/PostgresStore \
  sqlite:store/SqlStore postgres:store/SqlStore mongodb:store/MongoStore; do
  feature=${pair%%:*} path=${pair#*:}
  module=${path%/*} item=${path#*/}
  page=$DOC/$module/struct.$item.html
  [ -e "$page" ] || page=$DOC/$module/type.$item.html # SqliteStore = SqlStore<Sqlite>
  if ! grep -qs "Available on <strong>crate features\? [^.]*<code>$feature</code>" "$page"; then
    echo "docs.sh: no page for $item with a label for feature $feature" >&2
    exit 1
  fi
done
echo "docs.sh: every feature-gated store is labelled"
