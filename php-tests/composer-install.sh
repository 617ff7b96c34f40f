#!/usr/bin/env bash
# Installs the stubs with Composer into a scratch project, the way a user
# would (a path repository pointing at this checkout), and checks that the
# stub file arrives intact and is not autoloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
command -v composer >/dev/null || { echo "composer missing; run scripts/setup" >&2; exit 1; }
composer validate --no-check-publish --no-interaction --quiet composer.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/composer.json" <<JSON
{
    "repositories": [{"type": "path", "url": "$root", "options": {"symlink": true}}],
    "require": {"synod/synod-stubs": "*@dev"}
}
JSON
# Offline: a path repository needs no network, and Packagist is turned off.
COMPOSER_HOME="$work/.composer" COMPOSER_DISABLE_NETWORK=1 \
  composer --working-dir="$work" --no-interaction --quiet config repo.packagist false
COMPOSER_HOME="$work/.composer" COMPOSER_DISABLE_NETWORK=1 \
  composer --working-dir="$work" --no-interaction --quiet install
installed="$work/vendor/synod/synod-stubs/stubs/synod.php"
cmp "$installed" stubs/synod.php
php -l "$installed" >/dev/null
if grep -q "synod.php" "$work/vendor/composer/autoload_files.php" 2>/dev/null; then
  echo "composer: the stubs must not be autoloaded" >&2
  exit 1
fi
# The autoloader loads cleanly next to the real extension.
php -d extension="$root/target/debug/libsynod.so" -r "require '$work/vendor/autoload.php'; echo class_exists('Synod\\\\Client') ? 'ok' : 'missing', PHP_EOL;" | grep -qx ok
echo "composer: stubs installed into a scratch project"
