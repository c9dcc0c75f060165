"""A path convertor for ``{level:level}``: ``patients|studies|series|instances`` → Level."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from obelisk.core.levels import Level


class LevelConvertor(Convertor[Level]):
    regex = "patients|studies|series|instances"

    def convert(self, value: str) -> Level:
        return Level.from_plural(value)

    def to_string(self, value: Level) -> str:
        return value.plural


register_url_convertor("level", LevelConvertor())
