"""The typed fast path of decoding: one C call from bytes to a checked envelope (msgspec).

It accepts a strict subset of what the exact :class:`~monitor.ingest.decode.Decoder` (orjson,
then checks in Python) accepts, and decodes it to the same values; anything else is ``None``
here and the exact path decides, with its precise reason and detail. So an invalid record costs
two parses and a valid one a single, typed one.

Narrower than the exact path on purpose, so that it can never be more lenient:

- only the configured keys at first. Producers often add keys of their own (a request id, a
  host), and the exact path costs several times more, so a record refused for an unknown key
  at the top level is decoded again with such keys skipped, once orjson has read it whole:
  msgspec skips a value without checking its UTF-8 or its number range, orjson checks both;
- integers within int64 (orjson reads a larger one as a float);
- feature values that are JSON scalars (a wrong-typed one is kept by the exact path, and
  counted downstream as a type mismatch);
- no dotted (nested) field paths, and distinct keys: otherwise there is no fast path at all.

The timestamp is parsed and bounded by :class:`~monitor.ingest.columns.ColumnDecoder`, as on
the exact path.

Narrower still, :class:`TypedPredictions` decodes a configured model's predictions with its
features as a struct (numbers for numeric features, scalars for categorical ones, no other
key), the model name the union's tag: faster than a features object (no dict, no key strings:
1.3x in `bench/bench_decode.py`, 2.6x on one batch in cache), and its numeric features need no
type check. Anything else falls back to the envelope above.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Generic, TypeVar, Union

import msgspec
import orjson
from msgspec import UNSET, Meta, Struct, UnsetType

from monitor.settings import FieldMapping
from monitor.vocabulary import FeatureKind

#: Integers orjson reads as ``int`` (it reads larger ones as floats) and msgspec can bound.
Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Id = Annotated[str, Meta(min_length=1)] | Int
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
#: A JSON scalar; bool is a type of its own in msgspec.
Scalar = str | Int | float | bool
#: A numeric feature's value on the typed path: a number as orjson reads it, never a bool.
Number = Int | float


#: ``gc=False``: an envelope is a temporary holding decoded JSON only, which has no cycles.
class PredictionEnvelope(Struct, forbid_unknown_fields=True, gc=False):
    """A prediction as the exact path would accept it (UNSET: absent, as opposed to null)."""

    id: Id
    model: str
    version: str | Int | float | None = None
    timestamp: float | str | None = None
    features: dict[str, Scalar | None] | None = None
    prediction: Scalar | UnsetType | None = UNSET
    score: Probability | dict[str, Probability] | UnsetType | None = UNSET


class LabelEnvelope(Struct, forbid_unknown_fields=True, gc=False):
    """A label as the exact path would accept it."""

    id: Id
    model: str
    label: Scalar
    timestamp: float | str | None = None


S = TypeVar("S", PredictionEnvelope, LabelEnvelope)


class _Strict:
    """``strict``'s result; for a record it refuses only for an unknown key at the top level,
    ``lenient``'s (unknown keys skipped) once orjson has read the record whole; else None."""

    def __init__(self, strict: Callable[[bytes], Any], lenient: Callable[[bytes], Any]) -> None:
        self._strict, self._lenient = strict, lenient

    def many(self, raws: Sequence[bytes | None]) -> list[Any]:
        """:meth:`__call__` of each (``None`` for an empty one), the strict decoder mapped over
        them in C until one fails: that one alone goes through :meth:`__call__`."""
        out: list[Any] = []
        rest = iter(raws)
        while True:
            try:
                out.extend(map(self._strict, rest))  # type: ignore[arg-type]
                return out
            except Exception:  # map consumed the failing one: it is raws[len(out)]
                raw = raws[len(out)]
                out.append(self(raw) if raw else None)

    def __call__(self, raw: bytes) -> Any:
        try:
            return self._strict(raw)
        except msgspec.ValidationError as exc:
            # A key nested deeper (an undeclared feature) says where: " - at `$.features`".
            if not str(exc).startswith(_UNKNOWN) or " - at `" in str(exc):
                return None
        except msgspec.DecodeError:
            return None
        try:
            orjson.loads(raw)
            return self._lenient(raw)
        except (orjson.JSONDecodeError, msgspec.DecodeError, msgspec.ValidationError):
            return None


_UNKNOWN = "Object contains unknown field"


T = TypeVar("T")


class _Decodes(Generic[T]):
    """Both typed paths: one record, or a batch's (``None`` where refused, or empty)."""

    _decode: _Strict

    def __call__(self, raw: bytes) -> T | None:
        return self._decode(raw)  # type: ignore[no-any-return]

    def many(self, raws: Sequence[bytes | None]) -> list[T | None]:
        return self._decode.many(raws)


class FastPath(_Decodes[S]):
    """Decodes one stream's envelope; ``None`` when the exact path must decide.

    Parameters
    ----------
    base:
        :class:`PredictionEnvelope` or :class:`LabelEnvelope`.
    keys:
        The producer's JSON key of each of ``base``'s fields.
    """

    def __init__(self, base: type[S], keys: dict[str, str]) -> None:
        # A subclass's rename applies to the fields it declares: declared again, same types.
        fields = [
            (f.name, f.type) if f.required else (f.name, f.type, f.default)
            for f in msgspec.structs.fields(base)
        ]
        strict, lenient = (
            msgspec.json.Decoder(
                msgspec.defstruct(
                    base.__name__,
                    fields,
                    bases=(base,),
                    rename=keys,
                    forbid_unknown_fields=forbid,
                    gc=False,
                )
            ).decode
            for forbid in (True, False)
        )
        self._decode = _Strict(strict, lenient)
        self.keys = keys


def fast_paths(
    fields: FieldMapping,
) -> tuple[FastPath[PredictionEnvelope], FastPath[LabelEnvelope]] | None:
    """The fast paths of both streams, or ``None`` when the mapping rules them out."""
    pred = {
        name: getattr(fields, name)
        for name in ("id", "model", "version", "timestamp", "features", "prediction", "score")
    }
    label = {name: getattr(fields, name) for name in ("id", "model", "label", "timestamp")}
    for keys in (pred, label):
        if len(set(keys.values())) < len(keys) or any("." in k for k in keys.values()):
            return None
    return FastPath(PredictionEnvelope, pred), FastPath(LabelEnvelope, label)


class TypedPredictions(_Decodes[Any]):
    """Decodes a prediction of a configured model with typed features; ``None`` otherwise.

    The result has the envelope's fields but ``model`` (a class attribute: the union's tag)
    and ``features``: a struct of the model's features (absent: ``None``) whose class maps
    each feature name to its attribute (``attrs``); the envelope's class attribute
    ``no_features`` is the struct with every feature missing.

    Parameters
    ----------
    models:
        Each configured model's features and kinds.
    keys:
        The producer's JSON key of each envelope field (as :func:`fast_paths` checks them).
    """

    def __init__(self, models: Mapping[str, Mapping[str, FeatureKind]], keys: dict[str, str]):
        decoders, classes = [], set()
        for forbid in (True, False):
            envelopes = [
                self._envelope(model, kinds, keys, forbid) for model, kinds in models.items()
            ]
            classes.update(envelopes)
            # Always a union: msgspec lets a lone tagged struct go without its tag, and a
            # record without a model must fall back (no model name holds a space).
            envelopes.append(self._envelope(" no model", {}, keys, forbid))
            union: Any = Union[tuple(envelopes)]  # noqa: UP007
            decoders.append(msgspec.json.Decoder(union).decode)
        self.classes = frozenset(classes)
        self._decode = _Strict(*decoders)

    @staticmethod
    def _envelope(
        model: str, kinds: Mapping[str, FeatureKind], keys: dict[str, str], forbid: bool
    ) -> type:
        """One model's envelope; ``forbid``: no unknown key at the top level either (its
        features never take one: an undeclared feature is counted, on the other path)."""
        attrs = {name: f"f{j}" for j, name in enumerate(kinds)}
        features = msgspec.defstruct(
            "Features",
            [
                (attrs[n], (Number if k == "numeric" else Scalar) | None, None)
                for n, k in kinds.items()
            ],
            rename={attr: name for name, attr in attrs.items()},
            forbid_unknown_fields=True,
            frozen=True,
            gc=False,
            namespace={"attrs": attrs},
        )
        fields = [
            (f.name, features | None, None)
            if f.name == "features"
            else ((f.name, f.type) if f.required else (f.name, f.type, f.default))
            for f in msgspec.structs.fields(PredictionEnvelope)
            if f.name != "model"
        ]
        return msgspec.defstruct(
            "TypedPrediction",
            fields,
            rename={name: keys[name] for name, *_ in fields},
            tag=model,
            tag_field=keys["model"],
            forbid_unknown_fields=forbid,
            gc=False,
            namespace={"model": model, "no_features": features()},
        )


def unset_as(value: Any, default: Any) -> Any:
    """``default`` for an absent field, else the value."""
    return default if value is UNSET else value
