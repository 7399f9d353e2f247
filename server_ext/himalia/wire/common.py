"""The API's shared vocabulary: names, pages and the request base.

Names follow ``CreateX`` / ``UpdateX`` / ``DescribeX``. Requests forbid unknown fields so that a
typo is a 400 naming the field rather than a silently ignored setting.
"""

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Login = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._@-]{0,99}$")]
GroupName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
ProjectKey = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{1,39}$")]
ConnectionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
ShortText = Annotated[str, StringConstraints(max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=10_000)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Preset = Literal["reader", "launcher", "contributor", "admin"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _WithComputed:
    """A row as pydantic's ``from_attributes`` reads it, some of its attributes replaced or added."""

    def __init__(self, row: object, computed: dict[str, Any]) -> None:
        self._row = row
        self._computed = computed

    def __getattr__(self, name: str) -> Any:
        return self._computed[name] if name in self._computed else getattr(self._row, name)


def from_row(model: type[M], row: object, /, **computed: Any) -> M:
    """``model`` from ``row``'s attributes of the same names; ``computed`` holds the fields the row
    does not hold as shown (a related row's name, the caller's rights), each said once at the call."""
    return model.model_validate(_WithComputed(row, computed) if computed else row, from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


DatasetName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
MetricName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$")]
CheckName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
MetricValueType = str | int | FiniteFloat | bool | None | list[Any]


TierName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]

JsonScalar = str | int | float | bool | None


# -- variables --------------------------------------------------------------------------------


class Variables(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variables: dict[str, Any]
