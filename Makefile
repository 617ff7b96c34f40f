# Convenience targets; the scripts do the work.
.PHONY: setup build run test

setup:
	scripts/setup

build:
	cargo build -p synod

# Builds and runs a single-node Synod on etcd's default ports (client 2379),
# storing in ./synod.data.
run: build
	target/debug/synod

test:
	scripts/test
