"""TouchDesigner's Python API for datpatch's operators: op(), ops(), me, mod, absTime, run(),
debug(), Par and Cell objects, DAT methods. Loaded once into the `td` module; every Text DAT's
module starts with these names, as TouchDesigner's DAT modules do.

The operators themselves live in the engine: every method here asks the native module `_datpatch`,
which answers only on the cook thread, inside a callback (TouchDesigner's rule)."""

import builtins
import fnmatch
import json
import sys
import traceback

import _datpatch as _n

__all__ = ["op", "ops", "mod", "absTime", "run", "debug", "print", "OP", "DAT", "CHOP", "Par",
           "Cell", "Channel", "ScriptTimeout"]


class ScriptTimeout(BaseException):
    """Raised into a callback that runs past the project's time limit. A BaseException, so that
    `except Exception` in the callback does not swallow it."""


def _index(value):
    # Rows and columns are named by str or numbered by int; a Cell or Par stands for its value.
    if isinstance(value, (Cell, Par)):
        return value.val
    return value


class OP:
    """An operator (`op('name')`). Compares equal to another handle of the same operator."""

    __slots__ = ("id",)

    def __init__(self, id):
        object.__setattr__(self, "id", id)

    @property
    def name(self):
        return _n.op_name(self.id)

    @property
    def type(self):
        return _n.op_type(self.id)

    @property
    def valid(self):
        return _n.op_exists(self.id)

    @property
    def par(self):
        return ParCollection(self)

    @property
    def module(self):
        return _n.module_of(self.id)

    @property
    def storage(self):
        return _n.storage(self.id)

    def store(self, key, value):
        _n.storage(self.id)[key] = value
        return value

    def fetch(self, key, *default, search=True, storeDefault=False):
        storage = _n.storage(self.id)
        if key in storage:
            return storage[key]
        if default:
            if storeDefault:
                storage[key] = default[0]
            return default[0]
        raise KeyError(f"{self.name} has no stored key {key!r}")

    def unstore(self, keys):
        storage = _n.storage(self.id)
        for key in list(storage):
            if fnmatch.fnmatchcase(str(key), str(keys)):
                del storage[key]

    def __eq__(self, other):
        return isinstance(other, OP) and other.id == self.id

    def __hash__(self):
        return hash(("op", self.id))

    def __repr__(self):
        return f"op('{_n.op_name(self.id)}')" if _n.op_exists(self.id) else f"<deleted op {self.id}>"


class DAT(OP):
    """A DAT: a table (Table DAT, received messages) or text (Text DAT)."""

    __slots__ = ()

    @property
    def numRows(self):
        return _n.dat_size(self.id)[0]

    @property
    def numCols(self):
        return _n.dat_size(self.id)[1]

    @property
    def isTable(self):
        return not _n.dat_is_text(self.id)

    @property
    def isText(self):
        return _n.dat_is_text(self.id)

    @property
    def text(self):
        return _n.dat_text(self.id)

    @text.setter
    def text(self, value):
        _n.dat_set_text(self.id, str(value))

    @property
    def jsonObject(self):
        return json.loads(self.text)

    @property
    def csv(self):
        import csv
        import io
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(self.rows(val=True))
        return out.getvalue()

    def write(self, *args):
        text = "".join(str(a) for a in args)
        _n.dat_set_text(self.id, _n.dat_text(self.id) + text)
        return text

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 2:
            return self.cell(key[0], key[1])
        return self.row(key)

    def __setitem__(self, key, value):
        if not (isinstance(key, tuple) and len(key) == 2):
            raise TypeError("write a cell as dat[row, col] = value")
        r, c = _n.dat_find(self.id, _index(key[0]), _index(key[1]))
        if r is None or c is None:
            raise IndexError(f"{self.name} has no cell [{key[0]!r}, {key[1]!r}]")
        _n.dat_set_cell(self.id, r, c, _str(value))

    def cell(self, row, col, caseSensitive=True, val=False):
        r, c = _n.dat_find(self.id, _index(row), _index(col))
        if r is None or c is None:
            return None
        return _n.dat_cell(self.id, r, c) if val else Cell(self, r, c)

    def cells(self, row, col, caseSensitive=True, val=False):
        cell = self.cell(row, col, caseSensitive, val)
        return [] if cell is None else [cell]

    def row(self, *keys, caseSensitive=True, val=False):
        for key in keys:
            r, _ = _n.dat_find(self.id, _index(key), 0)
            if r is not None:
                return self._row(r, val)
        return None

    def col(self, *keys, caseSensitive=True, val=False):
        for key in keys:
            _, c = _n.dat_find(self.id, 0, _index(key))
            if c is not None:
                return self._col(c, val)
        return None

    def rows(self, *keys, caseSensitive=True, val=False):
        if not keys:
            return [self._row(r, val) for r in range(self.numRows)]
        found = [_n.dat_find(self.id, _index(k), 0)[0] for k in keys]
        return [self._row(r, val) for r in found if r is not None]

    def cols(self, *keys, caseSensitive=True, val=False):
        if not keys:
            return [self._col(c, val) for c in range(self.numCols)]
        found = [_n.dat_find(self.id, 0, _index(k))[1] for k in keys]
        return [self._col(c, val) for c in found if c is not None]

    def _row(self, r, val):
        values = _n.dat_row(self.id, r)
        return values if val else [Cell(self, r, c) for c in range(len(values))]

    def _col(self, c, val):
        values = [_n.dat_cell(self.id, r, c) for r in range(self.numRows)]
        return values if val else [Cell(self, r, c) for r in range(len(values))]

    def findCell(self, pattern, rows=None, cols=None, valuePattern=True, caseSensitive=False,
                 val=False, **_):
        found = self.findCells(pattern, rows, cols, valuePattern, caseSensitive, val)
        return found[0] if found else None

    def findCells(self, pattern, rows=None, cols=None, valuePattern=True, caseSensitive=False,
                  val=False, **_):
        pattern = str(pattern)
        match = fnmatch.fnmatchcase if caseSensitive else (
            lambda v, p: fnmatch.fnmatch(v.lower(), p.lower()))
        out = []
        for r in range(self.numRows):
            if rows is not None and r not in rows:
                continue
            values = _n.dat_row(self.id, r)
            for c, v in enumerate(values):
                if cols is not None and c not in cols:
                    continue
                if (match(v, pattern) if valuePattern else v == pattern):
                    out.append(v if val else Cell(self, r, c))
        return out

    # Editing: each returns what TouchDesigner's returns (the new row or column index).
    def appendRow(self, vals=(), nameOrIndex=None, sort=None):
        return _n.dat_edit(self.id, "appendRow", _cells(vals), _index(nameOrIndex))

    def appendRows(self, vals, nameOrIndex=None, sort=None):
        index = None
        for row in vals:
            index = self.appendRow(row if isinstance(row, (list, tuple)) else [row], nameOrIndex)
            if nameOrIndex is not None:
                nameOrIndex = index
        return index

    def insertRow(self, vals=(), nameOrIndex=0, sort=None):
        return _n.dat_edit(self.id, "insertRow", _cells(vals), _index(nameOrIndex))

    def replaceRow(self, nameOrIndex, vals, entireRow=True):
        return _n.dat_edit(self.id, "replaceRow", _cells(vals), _index(nameOrIndex))

    def appendCol(self, vals=(), nameOrIndex=None, sort=None):
        return _n.dat_edit(self.id, "appendCol", _cells(vals), _index(nameOrIndex))

    def insertCol(self, vals=(), nameOrIndex=0, sort=None):
        return _n.dat_edit(self.id, "insertCol", _cells(vals), _index(nameOrIndex))

    def replaceCol(self, nameOrIndex, vals, entireCol=True):
        return _n.dat_edit(self.id, "replaceCol", _cells(vals), _index(nameOrIndex))

    def deleteRow(self, nameOrIndex):
        _n.dat_edit(self.id, "deleteRow", [], _index(nameOrIndex))

    def deleteRows(self, vals=None):
        keys = list(vals) if vals is not None else list(range(self.numRows))
        rows = sorted({r for r in (_n.dat_find(self.id, _index(k), 0)[0] for k in keys)
                       if r is not None}, reverse=True)
        for r in rows:
            _n.dat_edit(self.id, "deleteRow", [], r)

    def deleteCol(self, nameOrIndex):
        _n.dat_edit(self.id, "deleteCol", [], _index(nameOrIndex))

    def deleteCols(self, vals=None):
        keys = list(vals) if vals is not None else list(range(self.numCols))
        cols = sorted({c for c in (_n.dat_find(self.id, 0, _index(k))[1] for k in keys)
                       if c is not None}, reverse=True)
        for c in cols:
            _n.dat_edit(self.id, "deleteCol", [], c)

    def setSize(self, numrows, numcols):
        _n.dat_edit(self.id, "setSize", [str(int(numrows)), str(int(numcols))], None)

    def clear(self, keepSize=False, keepFirstRow=False, keepFirstCol=False):
        flags = ["1" if f else "" for f in (keepSize, keepFirstRow, keepFirstCol)]
        _n.dat_edit(self.id, "clear", flags, None)

    def copy(self, dat):
        self.text = dat.text


class CHOP(OP):
    """A CHOP (the Channels CHOP): channels by name, `numChans`, `chans()`."""

    __slots__ = ()

    def __getitem__(self, name):
        if isinstance(name, int):
            names = self.chanNames()
            if not 0 <= name < len(names):
                return None
            name = names[name]
        return Channel(self, name) if name in self.chanNames() else None

    def chans(self, *patterns):
        names = self.chanNames()
        if patterns:
            names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        return [Channel(self, n) for n in names]


class Channel:
    """One channel of a CHOP: `.eval()` its last value, `.vals` its history."""

    __slots__ = ("owner", "name")

    def __init__(self, owner, name):
        self.owner = owner
        self.name = name

    def eval(self):
        return self.owner.chan(self.name)

    @property
    def vals(self):
        return self.owner.chanHistory(self.name)

    def __float__(self):
        return float(self.eval())

    def __repr__(self):
        return f"{self.owner!r}[{self.name!r}]"


class _Number:
    """What a Cell and a Par share: they convert themselves for arithmetic and comparison, as
    TouchDesigner's do (numbers when their value reads as one; `+` with a str concatenates)."""

    __slots__ = ()

    def _num(self):
        value = self.val
        if not isinstance(value, str):
            return value
        try:
            return int(value)
        except ValueError:
            return float(value)

    def __int__(self):
        return int(self._num())

    def __float__(self):
        return float(self._num())

    def __lt__(self, other):
        return _cmp(self, other) < 0

    def __le__(self, other):
        return _cmp(self, other) <= 0

    def __gt__(self, other):
        return _cmp(self, other) > 0

    def __ge__(self, other):
        return _cmp(self, other) >= 0

    def __add__(self, other):
        if isinstance(other, str):
            return str(self.val) + other
        return self._num() + _numeric(other)

    def __radd__(self, other):
        if isinstance(other, str):
            return other + str(self.val)
        return _numeric(other) + self._num()

    def __sub__(self, other):
        return self._num() - _numeric(other)

    def __rsub__(self, other):
        return _numeric(other) - self._num()

    def __mul__(self, other):
        return self._num() * _numeric(other)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._num() / _numeric(other)

    def __rtruediv__(self, other):
        return _numeric(other) / self._num()

    def __neg__(self):
        return -self._num()


class Cell(_Number):
    """One cell of a DAT (`dat[r, c]`): `.val`, `.row`, `.col`, `.owner`; it converts itself for
    arithmetic and string use, as TouchDesigner's does."""

    __slots__ = ("owner", "row", "col")

    def __init__(self, owner, row, col):
        self.owner = owner
        self.row = row
        self.col = col

    @property
    def val(self):
        value = _n.dat_cell(self.owner.id, self.row, self.col)
        return "" if value is None else value

    @val.setter
    def val(self, value):
        _n.dat_set_cell(self.owner.id, self.row, self.col, _str(value))

    @property
    def valid(self):
        return _n.dat_cell(self.owner.id, self.row, self.col) is not None

    def offset(self, r, c):
        return self.owner.cell(self.row + r, self.col + c)

    def __str__(self):
        return self.val

    def __repr__(self):
        return f"type:Cell cell:({self.row}, {self.col}) owner:{self.owner!r} value:{self.val}"

    def __bool__(self):
        return bool(self.val)

    def __hash__(self):
        return hash(self.val)

    def __eq__(self, other):
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            try:
                return self._num() == other
            except ValueError:
                return False
        return self.val == str(other)


def _numeric(value):
    return value._num() if isinstance(value, _Number) else value


def _cmp(a, b):
    a, b = _numeric(a), _numeric(b)
    return (a > b) - (a < b)


def _str(value):
    # TouchDesigner converts each item with str(): True gives "True".
    if isinstance(value, (Cell, Par)):
        return str(value.val)
    return str(value)


def _cells(vals):
    if isinstance(vals, (str, bytes)) or not hasattr(vals, "__iter__"):
        vals = [vals]
    return [_str(v) for v in vals]


class Par(_Number):
    """A parameter (`op('x').par.port`): `.val`, `.eval()`, `.pulse()`, `.name`, `.label`,
    `.default`, `.menuNames`, `.menuLabels`; compares and converts as its value."""

    __slots__ = ("owner", "name")

    def __init__(self, owner, name):
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "name", name)

    @property
    def val(self):
        return _n.par_get(self.owner.id, self.name)

    @val.setter
    def val(self, value):
        _n.par_set(self.owner.id, self.name, _parval(value))

    def eval(self):
        return self.val

    def pulse(self, *args, **kwargs):
        _n.par_pulse(self.owner.id, self.name)

    @property
    def label(self):
        return _n.par_info(self.owner.id, self.name)[0]

    @property
    def default(self):
        return _n.par_info(self.owner.id, self.name)[1]

    @property
    def menuNames(self):
        return _n.par_info(self.owner.id, self.name)[2]

    @property
    def menuLabels(self):
        return _n.par_info(self.owner.id, self.name)[3]

    @property
    def page(self):
        return _n.par_info(self.owner.id, self.name)[4]

    @property
    def isPulse(self):
        return _n.par_info(self.owner.id, self.name)[5] == "pulse"

    def __str__(self):
        return str(self.val)

    def __repr__(self):
        return f"type:Par name:{self.name} owner:{self.owner!r} value:{self.val!r}"

    def __bool__(self):
        return bool(self.val)

    def __eq__(self, other):
        if isinstance(other, Par):
            other = other.val
        return self.val == other

    def __hash__(self):
        return hash((self.owner.id, self.name))


def _parval(value):
    if isinstance(value, Par):
        return value.val
    if isinstance(value, Cell):
        return value.val
    if isinstance(value, OP):
        return value.name
    return value


class ParCollection:
    """`op.par`: each parameter by its token; assigning sets its value."""

    __slots__ = ("_owner",)

    def __init__(self, owner):
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, token):
        if token.startswith("__") or not _n.par_exists(self._owner.id, token):
            raise AttributeError(f"{self._owner.name} has no parameter {token!r}")
        return Par(self._owner, token)

    def __setattr__(self, token, value):
        if not _n.par_exists(self._owner.id, token):
            raise AttributeError(f"{self._owner.name} has no parameter {token!r}")
        _n.par_set(self._owner.id, token, _parval(value))

    def __getitem__(self, token):
        return self.__getattr__(token)

    def __iter__(self):
        return iter([Par(self._owner, t) for t in _n.par_tokens(self._owner.id)])


_classes = {}


def _class_for(kind):
    cls = _classes.get(kind)
    if cls is None:
        type_name, is_dat, methods = _n.kind_info(kind)
        namespace = {"__slots__": ()}
        for name, is_property in methods:
            namespace[name] = _operator_method(name, is_property)
        cls = type(type_name, (DAT if is_dat else CHOP,), namespace)
        _classes[kind] = cls
    return cls


def _operator_method(name, is_property):
    if is_property:
        return property(lambda self: _n.call_method(self.id, name, (), None))

    def method(self, *args, **kwargs):
        return _n.call_method(self.id, name, args, kwargs or None)

    method.__name__ = name
    return method


def _new_op(id, kind):
    """A handle of the class for `kind`; the host keeps one per operator of a project."""
    return _class_for(kind)(id)


def _op(id):
    """The handle for operator `id` (one object per operator, reused)."""
    return _n.op_handle(id)


def op(name):
    """The operator named `name`, or None."""
    if isinstance(name, OP):
        return name
    id = _n.op_find(str(name))
    return None if id is None else _op(id)


def ops(*patterns):
    """Every operator whose name matches one of the patterns (`ops('web*')`)."""
    return [_op(id) for id in _n.op_match([str(p) for p in patterns])]


class _Mod:
    """`mod.name` / `mod('name')`: another Text DAT's module."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self(name)

    def __call__(self, name):
        dat = op(name)
        if dat is None:
            raise ModuleNotFoundError(f"no DAT named {name!r}")
        return dat.module


mod = _Mod()


class _AbsTime:
    @property
    def frame(self):
        return _n.frame()

    @property
    def seconds(self):
        return _n.seconds()


absTime = _AbsTime()


def run(script, *args, delayFrames=0, delayMilliSeconds=0, fromOP=None, endFrame=False, **_):
    """Runs `script` (a callable, or code as a string that sees `args`) on the cook thread,
    `delayFrames` frames or `delayMilliSeconds` later (at the next frame at the earliest)."""
    if isinstance(script, str):
        code = compile(script, "<run>", "exec")
        scope = dict(sys._getframe(1).f_globals)

        def script(*args):
            scope["args"] = args
            exec(code, scope)

    if not callable(script):
        raise TypeError("run() takes a callable or a string of code")
    _n.schedule(script, args, int(delayFrames), float(delayMilliSeconds))


def print(*args, sep=" ", end="\n", file=None, flush=False):
    """To the datpatch console (the Textport), or to `file` when one is given."""
    if file is not None:
        return builtins.print(*args, sep=sep, end=end, file=file, flush=flush)
    text = sep.join(str(a) for a in args) + end
    if not _n.log("info", text.rstrip("\n")):
        builtins.print(text, end="", flush=flush)


def debug(*args):
    """Like print, with the DAT and line it came from."""
    caller = sys._getframe(1)
    text = " ".join(str(a) for a in args)
    if not _n.log("debug", f"{caller.f_code.co_filename} line {caller.f_lineno}: {text}"):
        builtins.print(text)


def _describe(exc, only_in=None, tb=None):
    """(text, line) for an exception: its type and message, the frames that were in DAT modules,
    and the line in `only_in` (the DAT whose callback ran) where it was raised."""
    frames = traceback.extract_tb(tb or exc.__traceback__)
    line = None
    where = []
    for frame in frames:
        # DAT modules are compiled with the DAT's name as their file name: no path, no <...>.
        if frame.filename.startswith("<") or "/" in frame.filename:
            continue
        where.append(f"{frame.filename} line {frame.lineno}, in {frame.name}")
        if frame.filename == only_in:
            line = frame.lineno
    if isinstance(exc, SyntaxError) and exc.filename == only_in:
        line = exc.lineno
    name = type(exc).__name__
    message = str(exc)
    if isinstance(exc, SyntaxError):
        message = f"{exc.msg} (column {exc.offset})"
    text = f"{name}: {message}" if message else name
    if len(where) > 1:
        text += " [" + " <- ".join(reversed(where)) + "]"
    return text, line
