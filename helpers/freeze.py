"""Freezing a model into one constant GraphDef, loading it back, converting it for LiteRT.

"Freezing" (TF1's ``freeze_graph``) replaces every variable of a graph by a constant holding
its trained value, so that one ``.pb`` file describes the whole computation. In TensorFlow 2
the graph comes from a concrete function and ``convert_variables_to_constants_v2`` does the
replacement. This module wraps both directions and the TensorFlow Lite conversions, with
errors that name the problem and the file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

VARIABLE_OPS = frozenset({
    "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "VariableV2", "Variable",
    "VarIsInitializedOp", "ResourceGather", "AssignVariableXlaConcatND",
})
"""Op types that read or hold variables; a frozen graph contains none of them."""

TFLITE_MODES = ("float", "float16", "dynamic", "int8")
"""The TensorFlow Lite flavours ``convert_to_tflite`` produces."""
LITERT_KERNELS = ("default", "builtin")
"""LiteRT kernel choices: with its default XNNPACK delegate, or its builtin kernels only."""
DYNAMIC_RANGE_MIN_ELEMENTS = 1024
"""Weight tensors with fewer elements stay float in dynamic-range mode.

The converter's default ``min_num_elements_for_weights``: the installed TensorFlow names it in
``tensorflow/compiler/mlir/quantization/tensorflow/python/quantize_model.py``
(``_DYNAMIC_RANGE_DEFAULT_MIN_NUM_ELEMENTS_FOR_WEIGHTS``, with a note that the LiteRT
converter's default in ``tf_to_tfl_flatbuffer.cc`` matches); tests/test_freeze.py checks the
boundary by converting kernels of 1,023 and 1,024 elements.
"""


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
    """Find a graph's inputs (its placeholders) and outputs (tensors nothing else consumes).

    Every output of a multi-output node counts separately: ``split:1`` is an output when
    nothing reads it, even if ``split:0`` is consumed.

    Args:
        graph_def: a frozen ``GraphDef``.

    Returns:
        ``(inputs, outputs)`` as tensor names (``"node:index"``), in graph order.
    """
    import tensorflow as tf

    consumed = set()
    for node in graph_def.node:
        for name in node.input:
            if not name.startswith("^"):
                op, _, index = name.partition(":")
                consumed.add((op, int(index or 0)))
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
    inputs = tuple(f"{op.name}:0" for op in graph.get_operations() if op.type == "Placeholder")
    outputs = tuple(f"{op.name}:{i}" for op in graph.get_operations()
                    if op.type not in {"NoOp", "Placeholder", "Const"}
                    for i in range(len(op.outputs)) if (op.name, i) not in consumed)
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


def convert_to_tflite(saved_model: str | Path, mode: str = "float",
                      representative_data: np.ndarray | None = None,
                      signature_key: str = "serving_default") -> bytes:
    """Convert a SavedModel into a TensorFlow Lite flatbuffer (``from_saved_model``).

    Args:
        saved_model: the SavedModel folder (e.g. written by Keras' ``model.export``).
        mode: ``"float"`` (32-bit weights); ``"float16"`` (16-bit float weights, computed
            in float32); ``"dynamic"`` (dynamic range: large weight tensors stored in 8 bits,
            activations quantised to 8 bits on the fly by the kernels that support it, small
            tensors kept in float); ``"int8"`` (weights, activations, input and output in 8
            bits, with activation ranges calibrated on ``representative_data``).
        representative_data: typical inputs (first axis), required for ``"int8"``.
        signature_key: the SavedModel signature to convert.

    Returns:
        The ``.tflite`` file's bytes.
    """
    import tensorflow as tf

    if mode not in TFLITE_MODES:
        raise ValueError(f"mode must be one of {TFLITE_MODES}, got {mode!r}.")
    if mode == "int8" and (representative_data is None or len(representative_data) == 0):
        raise ValueError("Full-integer quantisation needs representative_data: a few hundred "
                         "typical inputs to calibrate the activation ranges.")
    saved_model = Path(saved_model)
    if not (saved_model / "saved_model.pb").is_file():
        raise ValueError(f"{str(saved_model)!r} is not a SavedModel folder (no saved_model.pb);"
                         " write one with model.export(path) or tf.saved_model.save.")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model),
                                                         signature_keys=[signature_key])
    if mode != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        samples = np.asarray(representative_data, dtype=np.float32)

        def calibration() -> Iterable[list[np.ndarray]]:
            for sample in samples:
                yield [sample[None]]

        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


class TFLiteFunction:
    """A ``.tflite`` model run by the LiteRT interpreter; float arrays in, float arrays out.

    Integer inputs and outputs are quantised and dequantised with the model's own scale and
    zero point, so every flavour is called the same way.
    """

    def __init__(self, model: str | Path | bytes, num_threads: int = 1,
                 kernels: str = "default"):
        """Load ``model`` (a path or the file's bytes) into a LiteRT interpreter.

        Args:
            model: the ``.tflite`` file or its bytes.
            num_threads: CPU threads the interpreter may use.
            kernels: ``"default"`` (LiteRT's ``OpResolverType.AUTO``: the builtin kernels
                plus the default delegate, XNNPACK on a CPU, wherever it takes the ops) or
                ``"builtin"`` (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``: the builtin kernels only).
        """
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if kernels not in LITERT_KERNELS:
            raise ValueError(f"kernels must be one of {LITERT_KERNELS}, got {kernels!r}: "
                             "'default' lets LiteRT apply its default delegate (XNNPACK), "
                             "'builtin' runs its builtin kernels only.")
        resolver = (OpResolverType.AUTO if kernels == "default"
                    else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self.kernels = kernels
        self.path = None if isinstance(model, bytes) else Path(model)
        where = "the given bytes" if self.path is None else repr(str(self.path))
        if self.path is not None and not self.path.is_file():
            raise FileNotFoundError(f"No TensorFlow Lite model at {where}.")
        source = {"model_content": model} if self.path is None else {"model_path": str(self.path)}
        try:
            self.interpreter = Interpreter(**source, num_threads=num_threads,
                                           experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"{where} is not a readable TensorFlow Lite model: {err}") from err
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = int(self.input["shape"][0])

    def _check_and_resize(self, x: np.ndarray) -> None:
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

    def quantise(self, x: np.ndarray) -> np.ndarray:
        """Map float inputs to the model's input type: ``round(x / scale) + zero_point``.

        Returns ``x`` as float32 unchanged when the model takes float input; values beyond
        the integer range are an error, not clipped.
        """
        x = np.asarray(x, dtype=np.float32)
        dtype = self.input["dtype"]
        if dtype == np.float32:
            return x
        scale, zero_point = self.input["quantization"]
        q = np.round(x / scale) + zero_point
        info = np.iinfo(dtype)
        if q.size and (q.min() < info.min or q.max() > info.max):
            raise ValueError(f"Inputs outside the range the model was calibrated for: they "
                             f"quantise to [{q.min():.0f}, {q.max():.0f}], beyond "
                             f"{dtype.__name__}'s [{info.min}, {info.max}].")
        return q.astype(dtype)

    def dequantise(self, y: np.ndarray) -> np.ndarray:
        """Map raw outputs to float: ``(y - zero_point) * scale`` (float outputs unchanged)."""
        if self.output["dtype"] == np.float32:
            return y
        scale, zero_point = self.output["quantization"]
        return (y.astype(np.float32) - zero_point) * np.float32(scale)

    def invoke_quantised(self, q: np.ndarray) -> np.ndarray:
        """Run a batch already in the model's input type; return the raw output tensor."""
        if q.dtype != self.input["dtype"]:
            raise ValueError(f"The model takes {self.input['dtype'].__name__} input, got "
                             f"{q.dtype}; convert with quantise() first.")
        self._check_and_resize(q)
        self.interpreter.set_tensor(self.input["index"], q)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run a float batch ``x`` and return the float outputs."""
        return self.dequantise(self.invoke_quantised(self.quantise(x)))

    def delegated_nodes(self) -> int:
        """Count the nodes a delegate (XNNPACK, on a CPU) took over in the execution plan.

        A delegate replaces each part of the graph it runs by one ``DELEGATE`` node; 0 means
        every op runs on LiteRT's builtin kernels. Reads the interpreter's op list through
        its private ``_get_ops_details`` (LiteRT has no public call for it).
        """
        if not hasattr(self.interpreter, "_get_ops_details"):
            raise ValueError("This LiteRT version does not list its ops (_get_ops_details); "
                             "check the delegate with a timing of kernels='builtin' instead.")
        self._check_and_resize(np.zeros((self._batch, *self.input["shape"][1:]),
                                        self.input["dtype"]))
        return sum(op["op_name"] == "DELEGATE" for op in self.interpreter._get_ops_details())


def tflite_quantisation(flatbuffer: bytes) -> list[tuple[str, str, tuple[int, ...], int, int]]:
    """List every quantised constant of a ``.tflite`` file with its quantisation parameters.

    Args:
        flatbuffer: the ``.tflite`` file's bytes.

    Returns:
        ``(name, dtype, shape, scales, axis)`` for each constant tensor that carries
        quantisation scales: ``scales`` is how many scales it has (1 per tensor, or one per
        slice along ``axis`` when quantised per channel), ``axis`` the quantised dimension.
    """
    model = _read_tflite(flatbuffer)
    found = []
    for tensor in model.subgraphs[0].tensors:
        buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
        stored = buffer is not None and (buffer.data is not None or (buffer.size or 0) > 0)
        q = tensor.quantization
        scales = 0 if q is None or q.scale is None else len(q.scale)
        if stored and scales:
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
            found.append((name, _type_name(tensor.type), tuple(int(d) for d in tensor.shape),
                          scales, int(q.quantizedDimension)))
    return found


def _read_tflite(flatbuffer: bytes) -> Any:
    from tensorflow.lite.tools import flatbuffer_utils

    try:
        return flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    except Exception as err:  # the flatbuffer reader raises assorted errors on bad bytes
        raise ValueError(f"These bytes are not a readable TensorFlow Lite model: {err}"
                         ) from err


def _type_name(tensor_type: int) -> str:
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.type_to_name(tensor_type)


def tflite_constants(flatbuffer: bytes) -> list[tuple[str, str, tuple[int, ...]]]:
    """List the constant tensors stored in a ``.tflite`` file: weights, biases, shapes.

    Args:
        flatbuffer: the ``.tflite`` file's bytes.

    Returns:
        ``(name, dtype, shape)`` for every tensor of the main graph whose data is stored in
        the file, in the file's order; dtype as TensorFlow Lite names it (``"FLOAT32"``,
        ``"INT8"``, ...). This shows which weights a quantised model keeps in float.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    except Exception as err:  # the flatbuffer reader raises assorted errors on bad bytes
        raise ValueError(f"These bytes are not a readable TensorFlow Lite model: {err}"
                         ) from err
    found = []
    for tensor in model.subgraphs[0].tensors:
        buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
        if buffer is not None and (buffer.data is not None or (buffer.size or 0) > 0):
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
            found.append((name, flatbuffer_utils.type_to_name(tensor.type),
                          tuple(int(d) for d in tensor.shape)))
    return found


def load_tflite(path: str | Path, num_threads: int = 1,
                kernels: str = "default") -> TFLiteFunction:
    """Load a ``.tflite`` file into the LiteRT interpreter as a callable.

    Args:
        path: the ``.tflite`` file.
        num_threads: CPU threads the interpreter may use.
        kernels: ``"default"`` (with LiteRT's default XNNPACK delegate) or ``"builtin"``
            (builtin kernels only); see :class:`TFLiteFunction`.

    Returns:
        A callable taking a float batch and returning float outputs (quantised models
        are quantised and dequantised at the boundary).
    """
    return TFLiteFunction(Path(path), num_threads=num_threads, kernels=kernels)
