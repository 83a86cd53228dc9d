"""A streamed answer reaches the browser at most ten times a second (`web.adapters.paced`): each update holds
the whole answer so far, so those in between are left out and nothing is lost."""

from janus_demo.service.events import Progress, Result, Started, Text
from janus_demo.web.adapters import paced


class Clock:
    """Time that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def stream(clock: Clock, events_at: list[tuple[float, object]]):
    for moment, event in events_at:
        clock.now = moment
        yield event


def texts(count: int, every: float, start: float = 0.0) -> list[tuple[float, Text]]:
    return [(start + n * every, Text("x" * (n + 1), f"{n + 1} tokens")) for n in range(count)]


def test_tokens_faster_than_ten_a_second_are_shown_ten_times_a_second_and_the_last_one_always():
    clock = Clock()
    events = [(0.0, Started("Starting")), *texts(100, 0.01, start=0.001), (1.1, Result("Done", text="x" * 100))]
    shown = list(paced(stream(clock, events), per_second=10, clock=clock))
    answers = [event.text for event in shown if isinstance(event, Text)]
    assert 9 <= len(answers) <= 11, len(answers)
    assert answers[-1] == "x" * 100, "the last token before the result is shown, not dropped"
    assert answers == sorted(answers, key=len), "in order"
    assert isinstance(shown[0], Started) and isinstance(shown[-1], Result)


def test_slow_tokens_and_the_first_one_are_never_held():
    clock = Clock()
    waiting = [(0.0, Text("", "Waiting for the model", answering=False)), (0.05, Text("x", "1 token"))]
    shown = list(paced(stream(clock, waiting + texts(5, 0.2, start=0.3)), per_second=10, clock=clock))
    assert [event.text for event in shown] == ["", "x", "x", "xx", "xxx", "xxxx", "xxxxx"]


def test_a_held_answer_is_shown_before_any_other_event():
    clock = Clock()
    events = [*texts(3, 0.01), (0.03, Progress("Drawing", 1, 10))]
    shown = list(paced(stream(clock, events), per_second=10, clock=clock))
    assert [type(event).__name__ for event in shown] == ["Text", "Text", "Progress"]
    assert shown[1].text == "xxx"


def test_closing_the_paced_stream_closes_the_run():
    closed = []

    def run():
        try:
            while True:
                yield Text("x", "1 token")
        finally:
            closed.append(True)

    shown = paced(run())
    next(shown)
    shown.close()
    assert closed == [True], "Stop reaches the model through the pacing"
