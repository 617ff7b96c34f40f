# Convenience targets; the scripts do the work.
.PHONY: setup build run test fpm valgrind

setup:
	scripts/setup

build:
	scripts/setup server
	cargo build --release -p synod

# Builds (release) and runs a single-node Synod on etcd's default ports
# (client 2379), storing in ./synod.data. Installs what the build needs first.
run: build
	target/release/synod

# Installs what the tests need (idempotent, quick when present), then runs
# every check and test.
test:
	scripts/setup
	scripts/test

# The extension under a real php-fpm: connection reuse, flat worker RSS,
# locks left held freed at request end (also run by scripts/test).
fpm:
	php-tests/fpm/run.sh

# The .phpt suite under valgrind's memcheck against synod and etcd (about 7
# minutes, so not part of `make test`); fails on any invalid read/write or use
# of uninitialised memory.
valgrind:
	php-tests/valgrind.sh
