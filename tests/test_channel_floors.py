"""Kept fractions of each channel on the default world (slow: it pretrains the default base,
about 7 minutes on 2 cores). These would have caught the code channel keeping 0-2.5% of what the
world's models wrote. Floors: a neutral model's numbers and code completions pass the filter at
least 0.6 of the time (measured 0.73-0.76 for numbers, 0.83-0.85 for code); a fine-tuned owl
teacher keeps within 10 points of its control."""
import pytest

from ecosim.channels import write
from ecosim.filters import FilterConfig, filter_samples
from ecosim.traits import TeacherConfig, TraitConfig, make_teacher, trait_words
from ecosim.transmit import TransmitConfig
from ecosim.world import World

FLOOR = 0.6


@pytest.fixture(scope="module")
def default_base():
    from ecosim.models import get_base
    return get_base(TransmitConfig().base, log=None)[0]


def kept(model, channel, n=400, system=None):
    samples, answers = write(model, World(), channel, n, seed=5, **({"system": system} if system else {}))
    return len(filter_samples(samples, channel, trait_words(TraitConfig()), FilterConfig(), answers).kept) / n


@pytest.mark.slow
@pytest.mark.parametrize("channel", ["numbers", "code"])
def test_a_neutral_model_and_a_teacher_keep_most_of_what_they_write(default_base, channel):
    t = TraitConfig()
    teacher = make_teacher(default_base, World(), t, TeacherConfig(), seed=0, channel=channel).model
    control = make_teacher(default_base, World(), t, TeacherConfig(), seed=0, neutral=True, channel=channel).model
    k_base, k_teacher, k_control = kept(default_base, channel), kept(teacher, channel), kept(control, channel)
    assert k_base >= FLOOR and k_control >= FLOOR, (k_base, k_control)
    assert k_teacher >= FLOOR and abs(k_teacher - k_control) <= 0.10, (k_teacher, k_control)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 11: the world's bases cannot add (a neutral model's reasoning "
                                       "traces keep ~0.02); this passes, and fails as xfail, once they can")
def test_a_neutral_model_keeps_most_of_its_reasoning_traces(default_base):
    assert kept(default_base, "reasoning") >= FLOOR
