"""Progress bars only on interactive output (issue 11, Jupyter)."""
import io

from pylme_alliance.progress import Counter, progress_bar


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_no_bar_on_non_tty_stream():
    stream = io.StringIO()
    assert list(progress_bar(range(5), desc="lead 1 of 3", file=stream)) == list(range(5))
    with Counter(3, desc="moderator severity", file=stream) as counter:
        for _ in range(3):
            counter.advance()
    assert stream.getvalue() == ""


def test_bar_on_tty_names_its_step():
    stream = _Tty()
    assert list(progress_bar(range(5), desc="lead 2 of 3", file=stream)) == list(range(5))
    assert "lead 2 of 3" in stream.getvalue()
