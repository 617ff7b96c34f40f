--TEST--
Synod\Election: campaign, isLeader, leader, proclaim, resign, observe (with "no leader"), one candidate per name and process, fork, and bad input
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; if (!function_exists('pcntl_fork')) die('skip pcntl'); ?>
--FILE--
<?php
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$n = 'phpt/election/' . bin2hex(random_bytes(4));

function attempt(string $label, callable $f): void
{
    try {
        $r = $f();
        echo "$label: ", json_encode($r), "\n";
    } catch (Throwable $e) {
        echo "$label: ", get_class($e), ': ', $e->getMessage(), "\n";
    }
}

function show(?Synod\LeaderChange $ch): void
{
    echo $ch === null ? "no change\n" : ('leader: ' . ($ch->value ?? 'none') . ($ch->revision > 0 ? '' : ' (no revision)') . "\n");
}

echo "-- nobody leads yet\n";
$e = $c->election($n, ttl: 5);
var_dump($e->name === $n, $e->leader(), $e->isLeader());
$obs = $e->observe();
show($obs->wait(5));
show($obs->wait(0));
$e->resign(); // not leading: nothing to do
attempt('proclaim before campaign', fn() => $e->proclaim('x'));

echo "-- campaign and lead\n";
var_dump($e->campaign('alpha', 5), $e->isLeader());
$kv = $e->leader();
var_dump($kv->value, str_starts_with($kv->key, "$n/"), $kv->lease !== 0);
show($obs->wait(5));
// One candidate per name and process: another object for the name sees it.
var_dump($c->election($n)->isLeader());

echo "-- proclaim\n";
$e->proclaim('beta');
var_dump($e->leader()->value, $e->leader()->createRevision === $kv->createRevision);
show($obs->wait(5));
// Campaigning again while leading only changes the value.
var_dump($e->campaign('gamma', 0));
show($obs->wait(5));

echo "-- another candidate cannot lead meanwhile\n";
$pid = pcntl_fork();
if ($pid === 0) {
    // The child has none of the parent's candidacy.
    $mine = $c->election($n, ttl: 5);
    $ok = $mine->isLeader() === false && $mine->campaign('child', 0.3) === false;
    try {
        $mine->proclaim('child');
        $ok = false;
    } catch (Synod\Exception\NotLeaderException $ex) {
    }
    exit($ok ? 0 : 1);
}
pcntl_waitpid($pid, $status);
var_dump(pcntl_wexitstatus($status), $e->isLeader(), $e->leader()->value);

echo "-- resign: no leader\n";
$e->resign();
var_dump($e->isLeader(), $e->leader());
show($obs->wait(5));
attempt('proclaim after resign', fn() => $e->proclaim('x'));
$e->resign();

echo "-- foreach over the observer\n";
var_dump($e->campaign('delta', 5));
foreach ($obs as $i => $ch) {
    echo "$i: ";
    show($ch);
    if ($ch->leader === null) {
        break;
    }
    $e->resign();
}
$obs->cancel();
show($obs->wait(0));
foreach ($obs as $ch) {
    echo "no iteration after cancel\n";
}

echo "-- bad input\n";
attempt('election("")', fn() => $c->election(''));
attempt('election(n, ttl: 0)', fn() => $c->election($n, ttl: 0));
attempt('election([])', fn() => $c->election([]));
attempt('campaign(v, -1)', fn() => $e->campaign('v', -1));
attempt('campaign([])', fn() => $e->campaign([]));
attempt('proclaim([])', fn() => $e->proclaim([]));
attempt('observer wait(-2)', fn() => $e->observe()->wait(-2));
attempt('new Synod\Election', fn() => new Synod\Election());
attempt('new Synod\LeaderObserver', fn() => new Synod\LeaderObserver());
$make = fn(string $cls) => (new ReflectionClass("Synod\\$cls"))->newInstanceWithoutConstructor();
$bare = $make('Election');
foreach (['isLeader', 'leader', 'resign', 'observe'] as $m) {
    attempt("bare Election::$m", fn() => $bare->$m());
}
attempt('bare Election::campaign', fn() => $bare->campaign('v'));
$bareObs = $make('LeaderObserver');
attempt('bare LeaderObserver::wait', fn() => $bareObs->wait(0));
attempt('bare LeaderObserver::cancel', fn() => $bareObs->cancel());
$ch = $make('LeaderChange');
var_dump($ch->leader, $ch->value, $ch->revision);
attempt('set LeaderChange::value', function () use ($ch) {
    $ch->value = 'x';
});
var_dump($c->countPrefix("$n/"));
?>
--EXPECTF--
-- nobody leads yet
bool(true)
NULL
bool(false)
leader: none
no change
proclaim before campaign: Synod\Exception\NotLeaderException: election: not leader
-- campaign and lead
bool(true)
bool(true)
string(5) "alpha"
bool(true)
bool(true)
leader: alpha
bool(true)
-- proclaim
string(4) "beta"
bool(true)
leader: beta
bool(true)
leader: gamma
-- another candidate cannot lead meanwhile
int(0)
bool(true)
string(5) "gamma"
-- resign: no leader
bool(false)
NULL
leader: none
proclaim after resign: Synod\Exception\NotLeaderException: election: not leader
-- foreach over the observer
bool(true)
0: leader: delta
1: leader: none
no change
-- bad input
election(""): ValueError: the name must not be empty
election(n, ttl: 0): ValueError: the ttl must be positive, got 0
election([]): TypeError: %s
campaign(v, -1): ValueError: timeout must be a number of seconds in [0, 86400], -1 given
campaign([]): TypeError: %s
proclaim([]): TypeError: %s
observer wait(-2): ValueError: timeout must be a number of seconds in [0, 86400], -2 given
new Synod\Election: %s
new Synod\LeaderObserver: %s
bare Election::isLeader: ValueError: an Election is made with Client::election()
bare Election::leader: ValueError: an Election is made with Client::election()
bare Election::resign: ValueError: an Election is made with Client::election()
bare Election::observe: ValueError: an Election is made with Client::election()
bare Election::campaign: ValueError: an Election is made with Client::election()
bare LeaderObserver::wait: ValueError: a LeaderObserver is made with Election::observe()
bare LeaderObserver::cancel: null
NULL
NULL
int(0)
set LeaderChange::value: %s
int(0)
