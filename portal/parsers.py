"""The API's JSON parser: Python's `json` keeps the last of two equal keys and drops the first
without a word, so `{"name": "a", "name": "b"}` could pass one check and store another. A key
given twice answers 400 naming it; so does JSON nested too deep to read."""
import codecs

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> dict:
    from portal.errors import InvalidInput  # here: portal.errors imports DRF's views, which import this module

    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidInput.on(key, f"The key {key!r} is given more than once in one object; send it once.")
        seen[key] = value
    return seen


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})  # refuses codecs that decompress
        try:
            decoded = codecs.getreader(encoding)(stream)
            return json.load(decoded, object_pairs_hook=_refuse_duplicates,
                             parse_constant=json.strict_constant if self.strict else None)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        except ValueError as exc:  # UnicodeDecodeError is one
            raise ParseError(f"JSON parse error - {exc}") from None
