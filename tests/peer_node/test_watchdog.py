"""The stall watchdog alone: armed watches fire after their timeout, disarmed ones never."""
import threading

from peer_node.watchdog import Watchdog


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_an_armed_watch_fires_once_after_its_timeout():
    clock, fired = Clock(), []
    dog = Watchdog(clock=clock, tick=3600)
    with dog.watch(lambda: fired.append(1)) as w:
        w.arm(5, "no header within 5 s")
        clock.now = 4.9
        assert dog.check() == 0
        clock.now = 5.0
        assert dog.check() == 1 and fired == [1] and w.fired == "no header within 5 s"
        clock.now = 100
        assert dog.check() == 0 and fired == [1]


def test_disarmed_and_forgotten_watches_never_fire():
    clock, fired = Clock(), []
    dog = Watchdog(clock=clock, tick=3600)
    with dog.watch(lambda: fired.append("a")) as a:
        a.arm(1, "a")
        a.disarm()
        b = dog.watch(lambda: fired.append("b"))
        b.arm(1, "b")
        dog.forget(b)
        clock.now = 10
        assert dog.check() == 0
    assert fired == [] and a.fired is None


def test_rearming_moves_the_deadline():
    clock, fired = Clock(), []
    dog = Watchdog(clock=clock, tick=3600)
    w = dog.watch(lambda: fired.append(1))
    for t in range(10):
        clock.now = t
        w.arm(2, "stalled")
        assert dog.check() == 0
    clock.now = 11
    assert dog.check() == 1


def test_a_failing_cancel_is_swallowed():
    dog = Watchdog(clock=lambda: 10.0, tick=3600)
    w = dog.watch(lambda: 1 / 0)
    w.arm(0, "x")
    assert dog.check() == 1 and w.fired == "x"


def test_the_thread_fires_on_its_own():
    fired = threading.Event()
    dog = Watchdog(tick=0.01)
    w = dog.watch(fired.set)
    w.arm(0.05, "x")
    assert fired.wait(5)
    dog.close()
