"""Freezing a model into one constant GraphDef, loading it back, converting it for LiteRT.

"Freezing" (TF1's ``freeze_graph``) replaces every variable of a graph by a constant holding
its trained value, so that one ``.pb`` file describes the whole computation. In TensorFlow 2
the graph comes from a concrete function and ``convert_variables_to_constants_v2`` does the
replacement. This module wraps both directions and the TensorFlow Lite conversions, with
errors that name the problem and the file.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

VARIABLE_OPS = frozenset({
    "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "VariableV2", "Variable",
    "VarIsInitializedOp", "ResourceGather", "AssignVariableXlaConcatND",
})
"""Op types that read or hold variables; a frozen graph contains none of them."""

TFLITE_MODES = ("float", "dynamic", "int8")
"""The TensorFlow Lite flavours ``convert_to_tflite`` produces."""


class FrozenGraph(NamedTuple):
    """A frozen ``GraphDef`` and the tensor names to feed and to fetch (e.g. ``"image:0"``)."""

    graph_def: Any
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def _input_signature_of(model: Any) -> list:
    import tensorflow as tf

    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):
        inputs = []
    if not inputs:
        raise ValueError(
            f"The model {getattr(model, 'name', model)!r} has no known input shape: start it "
            "with keras.Input(shape=...), call it once on data, or pass "
            "input_signature=[tf.TensorSpec(shape, tf.float32)].")
    return [tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]) for t in inputs]


def _concrete_function(model_or_function: Any, input_signature: Sequence | None) -> Any:
    """Trace a Keras model, a ``tf.function`` or a plain callable into a ConcreteFunction."""
    import tensorflow as tf

    if hasattr(model_or_function, "structured_input_signature") and hasattr(
            model_or_function, "graph"):
        if input_signature is not None:
            raise ValueError("A ConcreteFunction already has its input signature; "
                             "call freeze_to_graphdef without input_signature.")
        return model_or_function  # already concrete
    is_keras = hasattr(model_or_function, "trainable_variables") and hasattr(
        model_or_function, "layers")
    if input_signature is None:
        if is_keras:
            input_signature = _input_signature_of(model_or_function)
        elif getattr(model_or_function, "input_signature", None) is not None:
            input_signature = model_or_function.input_signature
        else:
            raise ValueError(
                "This function has no known input shape; pass input_signature="
                "[tf.TensorSpec(shape, dtype, name=...)], one spec per argument.")
    input_signature = list(input_signature)
    if not all(isinstance(s, tf.TensorSpec) for s in input_signature):
        raise ValueError("input_signature must be a list of tf.TensorSpec, got "
                         f"{[type(s).__name__ for s in input_signature]}.")
    if is_keras:
        model = model_or_function

        def call(*args):
            return model(args[0] if len(args) == 1 else list(args), training=False)

        fn = tf.function(call)
    elif isinstance(model_or_function, tf.types.experimental.PolymorphicFunction):
        fn = model_or_function
    elif callable(model_or_function):
        fn = tf.function(model_or_function)
    else:
        raise ValueError(f"Cannot freeze a {type(model_or_function).__name__}; pass a Keras "
                         "model, a tf.function or a ConcreteFunction.")
    return fn.get_concrete_function(*input_signature)


def frozen_function(model_or_function: Any, input_signature: Sequence | None = None) -> Any:
    """Return the frozen ConcreteFunction (variables replaced by constants) of a model.

    Args:
        model_or_function: a Keras model, a ``tf.function`` or a ConcreteFunction.
        input_signature: one ``tf.TensorSpec`` per input; needed only when the model or
            function does not know its input shape.

    Returns:
        A ConcreteFunction whose graph holds no variable ops (the input of the TFLite
        converter and of ``freeze_to_graphdef``).
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    return convert_variables_to_constants_v2(_concrete_function(model_or_function,
                                                                input_signature))


def freeze_to_graphdef(model_or_function: Any,
                       input_signature: Sequence | None = None) -> FrozenGraph:
    """Freeze a model into one ``GraphDef`` with constants instead of variables.

    Args:
        model_or_function: a Keras model (with a known input shape), a ``tf.function`` or
            a ConcreteFunction.
        input_signature: one ``tf.TensorSpec`` per input, e.g.
            ``[tf.TensorSpec([None, 28, 28, 1], tf.float32, name="image")]``; needed only
            when the model or function does not know its input shape.

    Returns:
        ``FrozenGraph(graph_def, inputs, outputs)``: the ``GraphDef`` and the names of the
        tensors to feed and to fetch.
    """
    frozen = frozen_function(model_or_function, input_signature)
    return FrozenGraph(frozen.graph.as_graph_def(),
                       tuple(t.name for t in frozen.inputs),
                       tuple(t.name for t in frozen.outputs))


def op_counts(graph_def: Any) -> Counter:
    """Return how many nodes of each op type a ``GraphDef`` has (top level and functions)."""
    counts = Counter(node.op for node in graph_def.node)
    for function in graph_def.library.function:
        counts.update(node.op for node in function.node_def)
    return counts


def find_inputs_and_outputs(graph_def: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Find a graph's inputs (its placeholders) and outputs (nodes nothing else consumes).

    Args:
        graph_def: a frozen ``GraphDef``.

    Returns:
        ``(inputs, outputs)`` as tensor names (``"node:0"``), in graph order.
    """
    consumed = {name.lstrip("^").split(":")[0] for node in graph_def.node for name in node.input}
    inputs = tuple(f"{n.name}:0" for n in graph_def.node if n.op == "Placeholder")
    outputs = tuple(f"{n.name}:0" for n in graph_def.node
                    if n.name not in consumed and n.op not in {"NoOp", "Placeholder", "Const"})
    return inputs, outputs


def read_graph_def(path: str | Path) -> Any:
    """Read a ``GraphDef`` from a binary ``.pb`` or a text ``.pbtxt`` file.

    Args:
        path: the file ``tf.io.write_graph`` wrote.

    Returns:
        The parsed ``tf.compat.v1.GraphDef``.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        ValueError: if the file is empty, corrupt, truncated or not a GraphDef.
    """
    import tensorflow as tf
    from google.protobuf import message, text_format

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No frozen graph at {str(path)!r}; write one with "
                                "tf.io.write_graph(frozen.graph_def, folder, name).")
    data = path.read_bytes()
    graph_def = tf.compat.v1.GraphDef()
    try:
        if path.suffix == ".pbtxt":
            text_format.Parse(data.decode("utf-8"), graph_def)
        else:
            graph_def.ParseFromString(data)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as err:
        kind = "text (.pbtxt)" if path.suffix == ".pbtxt" else "binary"
        raise ValueError(f"{str(path)!r} is not a readable {kind} GraphDef (corrupt or "
                         f"truncated file, or another format?): {err}") from err
    if not graph_def.node:
        raise ValueError(f"{str(path)!r} holds no graph nodes: the file is empty or not a "
                         "GraphDef.")
    return graph_def


class FrozenGraphFunction:
    """A frozen graph loaded for inference: call it with NumPy arrays, get NumPy arrays."""

    def __init__(self, path: Path, graph_def: Any, inputs: Sequence[str],
                 outputs: Sequence[str]):
        import tensorflow as tf

        self.path, self.inputs, self.outputs = path, tuple(inputs), tuple(outputs)

        def import_graph() -> None:
            tf.compat.v1.import_graph_def(graph_def, name="")

        try:
            wrapped = tf.compat.v1.wrap_function(import_graph, [])
            graph = wrapped.graph
            feeds = [graph.as_graph_element(name) for name in self.inputs]
            fetches = [graph.as_graph_element(name) for name in self.outputs]
        except (ValueError, KeyError, TypeError, tf.errors.OpError) as err:
            raise ValueError(f"{str(path)!r} could not be imported as a graph with inputs "
                             f"{list(self.inputs)} and outputs {list(self.outputs)}: {err}"
                             ) from err
        self.input_specs = tuple((tuple(t.shape.as_list()) if t.shape.rank is not None
                                  else None, t.dtype.as_numpy_dtype) for t in feeds)
        pruned = wrapped.prune(feeds, fetches)
        # Called directly, a pruned function re-binds its arguments through a slow fallback
        # path on every call (milliseconds); a tf.function around it traces it once.
        self._function = tf.function(
            lambda *args: pruned(*args),
            input_signature=[tf.TensorSpec(t.shape, t.dtype) for t in feeds])

    def __call__(self, *arrays: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """Run the graph; one output comes back as an array, several as a list."""
        if len(arrays) != len(self.inputs):
            raise ValueError(f"The graph in {str(self.path)!r} takes {len(self.inputs)} "
                             f"input(s) {list(self.inputs)}, got {len(arrays)}.")
        feeds = []
        for name, (shape, dtype), array in zip(self.inputs, self.input_specs, arrays):
            array = np.asarray(array, dtype=dtype)
            if shape is not None and (array.ndim != len(shape) or any(
                    s is not None and s != a for s, a in zip(shape, array.shape))):
                want = "(" + ", ".join("batch" if s is None else str(s) for s in shape) + ")"
                raise ValueError(f"Input {name!r} of the graph in {str(self.path)!r} must have "
                                 f"shape {want}, got {array.shape}.")
            feeds.append(array)
        results = [r.numpy() for r in self._function(*feeds)]
        return results[0] if len(results) == 1 else results


def load_frozen_graph(path: str | Path, inputs: Sequence[str] | None = None,
                      outputs: Sequence[str] | None = None) -> FrozenGraphFunction:
    """Load a frozen ``.pb`` (or ``.pbtxt``) file as a callable, without any model code.

    Args:
        path: the file ``tf.io.write_graph`` wrote.
        inputs: tensor names to feed; by default the graph's placeholders.
        outputs: tensor names to fetch; by default the nodes nothing else consumes.

    Returns:
        A callable taking one NumPy array per input and returning the output array(s).

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        ValueError: if the file is not a readable GraphDef or the names are not in it.
    """
    path = Path(path)
    graph_def = read_graph_def(path)
    found_inputs, found_outputs = find_inputs_and_outputs(graph_def)
    inputs = tuple(inputs) if inputs is not None else found_inputs
    outputs = tuple(outputs) if outputs is not None else found_outputs
    if not inputs or not outputs:
        raise ValueError(f"{str(path)!r} has no placeholder input or no output node; pass "
                         "inputs= and outputs= tensor names explicitly.")
    return FrozenGraphFunction(path, graph_def, inputs, outputs)


def convert_to_tflite(model_or_function: Any, mode: str = "float",
                      representative_data: np.ndarray | None = None,
                      input_signature: Sequence | None = None) -> bytes:
    """Convert a model, through its frozen graph, into a TensorFlow Lite flatbuffer.

    Args:
        model_or_function: a Keras model, a ``tf.function`` or a ConcreteFunction.
        mode: ``"float"`` (32-bit weights), ``"dynamic"`` (8-bit weights, float
            activations) or ``"int8"`` (8-bit weights, activations, input and output).
        representative_data: samples (first axis) used to calibrate the activations'
            ranges; required for ``"int8"``.
        input_signature: as for ``freeze_to_graphdef``.

    Returns:
        The ``.tflite`` file's bytes.
    """
    import tensorflow as tf

    if mode not in TFLITE_MODES:
        raise ValueError(f"mode must be one of {TFLITE_MODES}, got {mode!r}.")
    if mode == "int8" and (representative_data is None or len(representative_data) == 0):
        raise ValueError("Full-integer quantisation needs representative_data: a few hundred "
                         "typical inputs to calibrate the activation ranges.")
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [frozen_function(model_or_function, input_signature)])
    if mode in {"dynamic", "int8"}:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        samples = np.asarray(representative_data, dtype=np.float32)

        def calibration() -> Iterable[list[np.ndarray]]:
            for sample in samples:
                yield [sample[None]]

        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with warnings.catch_warnings():  # int8 I/O: the converter warns about input statistics
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return converter.convert()


class TFLiteFunction:
    """A ``.tflite`` model run by the LiteRT interpreter; float arrays in, float arrays out.

    Integer inputs and outputs are quantised and dequantised with the model's own scale and
    zero point, so every flavour is called the same way.
    """

    def __init__(self, model: str | Path | bytes, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.path = None if isinstance(model, bytes) else Path(model)
        where = "the given bytes" if self.path is None else repr(str(self.path))
        if self.path is not None and not self.path.is_file():
            raise FileNotFoundError(f"No TensorFlow Lite model at {where}.")
        try:
            if self.path is None:
                self.interpreter = Interpreter(model_content=model, num_threads=num_threads)
            else:
                self.interpreter = Interpreter(model_path=str(self.path),
                                               num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"{where} is not a readable TensorFlow Lite model: {err}") from err
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = int(self.input["shape"][0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run a batch ``x`` (float) and return the float outputs."""
        x = np.asarray(x, dtype=np.float32)
        expected = tuple(int(s) for s in self.input["shape"][1:])
        if x.shape[1:] != expected:
            raise ValueError(f"The TensorFlow Lite model takes inputs of shape (batch, "
                             f"{', '.join(map(str, expected))}), got {x.shape}.")
        if len(x) != self._batch:
            self.interpreter.resize_tensor_input(self.input["index"], [len(x), *expected])
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self._batch = len(x)
        dtype = self.input["dtype"]
        if dtype != np.float32:
            scale, zero_point = self.input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if self.output["dtype"] != np.float32:
            scale, zero_point = self.output["quantization"]
            y = (y.astype(np.float32) - zero_point) * scale
        return y


def load_tflite(path: str | Path, num_threads: int = 1) -> TFLiteFunction:
    """Load a ``.tflite`` file into the LiteRT interpreter as a callable.

    Args:
        path: the ``.tflite`` file.
        num_threads: CPU threads the interpreter may use.

    Returns:
        A callable taking a float batch and returning float outputs (quantised models
        are quantised and dequantised at the boundary).
    """
    return TFLiteFunction(Path(path), num_threads=num_threads)


def file_size(path: str | Path) -> int:
    """Return the size in bytes of a file, or of all files under a folder (a SavedModel)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    if not path.exists():
        raise FileNotFoundError(f"Nothing at {str(path)!r} to measure.")
    return path.stat().st_size


def time_calls(function: Callable[[], Any], repeats: int, warmup: int = 3) -> np.ndarray:
    """Time ``repeats`` calls of ``function()`` after ``warmup`` untimed ones.

    Args:
        function: a callable with no arguments (wrap the input in a lambda).
        repeats: how many timed calls.
        warmup: untimed calls first (tracing, allocation, caches).

    Returns:
        The wall time of each timed call, in seconds.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"Need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}.")
    for _ in range(warmup):
        function()
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        function()
        times[i] = time.perf_counter() - start
    return times
