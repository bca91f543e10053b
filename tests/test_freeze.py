import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import freeze

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 6, 6, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    net = keras.Sequential([
        keras.Input((6, 6, 1), name="pixels"),
        keras.layers.Conv2D(3, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(4, activation="softmax"),
    ])
    # Non-trivial biases, so that a graph that lost a variable would give other outputs.
    net.set_weights([w + RNG.normal(scale=0.5, size=w.shape).astype(np.float32)
                     for w in net.get_weights()])
    return net


@pytest.fixture(scope="module")
def frozen_file(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("frozen")
    frozen = freeze.freeze_to_graphdef(model)
    tf.io.write_graph(frozen.graph_def, str(folder), "model.pb", as_text=False)
    tf.io.write_graph(frozen.graph_def, str(folder), "model.pbtxt", as_text=True)
    return folder / "model.pb"


def test_no_variable_ops_remain(model):
    traced = tf.function(lambda x: model(x)).get_concrete_function(
        tf.TensorSpec([None, 6, 6, 1], tf.float32)).graph.as_graph_def()
    before = freeze.op_counts(traced)
    frozen = freeze.freeze_to_graphdef(model)
    after = freeze.op_counts(frozen.graph_def)
    assert before["ReadVariableOp"] == len(model.weights)  # the oracle: variables were there
    assert not set(after) & freeze.VARIABLE_OPS
    assert after["Placeholder"] == 1
    assert after["Const"] >= len(model.weights)
    assert frozen.inputs == ("pixels:0",) and len(frozen.outputs) == 1


def test_names_found_in_the_graph_match_the_function(model):
    frozen = freeze.freeze_to_graphdef(model)
    assert freeze.find_inputs_and_outputs(frozen.graph_def) == (frozen.inputs, frozen.outputs)


@pytest.mark.parametrize("name", ["model.pb", "model.pbtxt"])
def test_loaded_graph_predictions_match_keras(model, frozen_file, name):
    run = freeze.load_frozen_graph(frozen_file.parent / name)
    expected = model(X, training=False).numpy()
    np.testing.assert_allclose(run(X), expected, atol=1e-6)
    np.testing.assert_allclose(run(X[:1]), expected[:1], atol=1e-6)  # any batch size


def test_frozen_constants_hold_the_trained_values(model, frozen_file):
    graph_def = freeze.read_graph_def(frozen_file)
    constants = [tf.make_ndarray(n.attr["value"].tensor) for n in graph_def.node if n.op == "Const"]
    kernel = model.layers[-1].kernel.numpy()
    assert any(c.shape == kernel.shape and np.array_equal(c, kernel) for c in constants)


def test_tf_function_needs_a_signature_and_freezes_with_one():
    @tf.function
    def double(a):
        return 2.0 * a

    with pytest.raises(ValueError, match="input_signature"):
        freeze.freeze_to_graphdef(double)
    frozen = freeze.freeze_to_graphdef(double, [tf.TensorSpec([3], tf.float32, name="a")])
    assert frozen.inputs == ("a:0",)


def test_model_without_input_shape_is_refused():
    unbuilt = keras.Sequential([keras.layers.Dense(2)], name="unbuilt")
    with pytest.raises(ValueError, match="'unbuilt' has no known input shape.*keras.Input"):
        freeze.freeze_to_graphdef(unbuilt)


def test_corrupt_file_error_names_the_file(frozen_file, tmp_path):
    corrupt = tmp_path / "corrupt.pb"
    corrupt.write_bytes(frozen_file.read_bytes()[: len(frozen_file.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"corrupt\.pb.*not a readable binary GraphDef"):
        freeze.load_frozen_graph(corrupt)
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(np.random.default_rng(1).bytes(500))
    with pytest.raises(ValueError, match=r"garbage\.pb"):
        freeze.load_frozen_graph(garbage)


def test_empty_and_missing_files_are_named(tmp_path):
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pb.*no graph nodes"):
        freeze.load_frozen_graph(empty)
    with pytest.raises(FileNotFoundError, match=r"missing\.pb"):
        freeze.load_frozen_graph(tmp_path / "missing.pb")


def test_wrong_input_shape_names_expected_shape_and_file(frozen_file):
    run = freeze.load_frozen_graph(frozen_file)
    expected = r"model\.pb.*shape \(batch, 6, 6, 1\), got \(2, 5, 5, 1\)"
    with pytest.raises(ValueError, match=expected):
        run(np.zeros((2, 5, 5, 1), np.float32))
    with pytest.raises(ValueError, match="takes 1 input"):
        run(X, X)


def test_unknown_output_name_is_reported(frozen_file):
    with pytest.raises(ValueError, match=r"model\.pb.*could not be imported"):
        freeze.load_frozen_graph(frozen_file, outputs=["no_such_node:0"])


@pytest.fixture(scope="module")
def saved_model(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported") / "saved_model"
    model.export(folder, format="tf_saved_model", verbose=False)
    return folder


@pytest.mark.parametrize("mode, tolerance", [("float", 1e-5), ("float16", 0.01),
                                             ("dynamic", 0.1), ("int8", 0.2)])
def test_tflite_flavours_run_in_litert_and_approximate_keras(model, saved_model, tmp_path,
                                                             mode, tolerance):
    flatbuffer = freeze.convert_to_tflite(saved_model, mode, representative_data=X)
    path = tmp_path / f"m_{mode}.tflite"
    path.write_bytes(flatbuffer)
    run = freeze.load_tflite(path)
    expected = model(X, training=False).numpy()
    got = run(X)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() < tolerance
    np.testing.assert_allclose(run(X[:1]), got[:1], atol=1e-6)  # resizing keeps results
    types = {dtype for _, dtype, shape in freeze.tflite_constants(flatbuffer)
             if len(shape) >= 2}  # the two kernels
    assert types == {"float": {"FLOAT32"}, "float16": {"FLOAT16"}, "int8": {"INT8"},
                     "dynamic": {"FLOAT32"}}[mode]  # both kernels are small: kept in float
    if mode == "int8":
        assert run.input["dtype"] == np.int8 and run.output["dtype"] == np.int8


def test_int8_quantise_and_raw_invoke_follow_scale_and_zero_point(saved_model):
    run = freeze.TFLiteFunction(freeze.convert_to_tflite(saved_model, "int8",
                                                         representative_data=X))
    scale, zero_point = run.input["quantization"]
    q = run.quantise(X[:3])
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, (np.round(X[:3] / scale) + zero_point).astype(np.int8))
    raw = run.invoke_quantised(q)
    out_scale, out_zero = run.output["quantization"]
    np.testing.assert_allclose(run(X[:3]), (raw.astype(np.float32) - out_zero) * out_scale)
    with pytest.raises(ValueError, match="outside the range"):
        run.quantise(X[:1] * 1e4)
    with pytest.raises(ValueError, match="takes int8 input.*quantise"):
        run.invoke_quantised(X[:1])


def test_large_kernels_are_quantised_in_dynamic_range_mode(tmp_path):
    keras.utils.set_random_seed(1)
    wide = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32)])  # 2,048 weights
    wide.layers[0].bias.assign(RNG.normal(size=32).astype(np.float32))  # a zero bias is dropped
    wide.export(tmp_path / "wide", verbose=False)
    types = {shape: dtype for _, dtype, shape in freeze.tflite_constants(
        freeze.convert_to_tflite(tmp_path / "wide", "dynamic"))}
    assert types[(32, 64)] == "INT8" and types[(32,)] == "FLOAT32"  # bias stays float


def test_tflite_errors(saved_model, tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        freeze.convert_to_tflite(saved_model, "int4")
    with pytest.raises(ValueError, match="representative_data"):
        freeze.convert_to_tflite(saved_model, "int8")
    with pytest.raises(ValueError, match="not a SavedModel folder"):
        freeze.convert_to_tflite(tmp_path, "float")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer" * 8)
    with pytest.raises(ValueError, match=r"bad\.tflite.*not a readable TensorFlow Lite model"):
        freeze.load_tflite(bad)
    run = freeze.TFLiteFunction(freeze.convert_to_tflite(saved_model))
    with pytest.raises(ValueError, match=r"shape \(batch, 6, 6, 1\)"):
        run(np.zeros((1, 7, 7, 1), np.float32))


def test_every_unconsumed_output_of_a_multi_output_node_is_found():
    with tf.Graph().as_default() as graph:
        x = tf.compat.v1.placeholder(tf.float32, [4, 2], name="x")
        first, _second = tf.split(x, 2, axis=0, name="halves")  # halves:1 is never read
        tf.identity(first * 2.0, name="doubled")
    inputs, outputs = freeze.find_inputs_and_outputs(graph.as_graph_def())
    assert inputs == ("x:0",)
    assert outputs == ("halves:1", "doubled:0")


@pytest.mark.parametrize("inputs, units, stored", [(31, 33, "FLOAT32"), (64, 16, "INT8")])
def test_dynamic_range_threshold_is_the_documented_element_count(tmp_path, inputs, units,
                                                                  stored):
    assert inputs * units - freeze.DYNAMIC_RANGE_MIN_ELEMENTS in (-1, 0)  # either side of it
    keras.utils.set_random_seed(2)
    dense = keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(units)])
    dense.export(tmp_path / "dense", verbose=False)
    types = {shape: dtype for _, dtype, shape in freeze.tflite_constants(
        freeze.convert_to_tflite(tmp_path / "dense", "dynamic"))}
    assert types[(units, inputs)] == stored


def test_int8_kernels_are_quantised_per_output_channel(saved_model):
    flatbuffer = freeze.convert_to_tflite(saved_model, "int8", representative_data=X)
    found = {shape: (dtype, scales, axis)
             for _, dtype, shape, scales, axis in freeze.tflite_quantisation(flatbuffer)}
    assert found[(3, 3, 3, 1)] == ("INT8", 3, 0)  # conv kernel: one scale per output channel
    assert found[(4, 48)] == ("INT8", 4, 0)  # dense kernel (units, inputs): one per unit
    float_only = freeze.convert_to_tflite(saved_model, "float")
    assert freeze.tflite_quantisation(float_only) == []
    with pytest.raises(ValueError, match="not a readable TensorFlow Lite model"):
        freeze.tflite_quantisation(b"not a flatbuffer" * 8)


def test_builtin_kernels_run_without_the_xnnpack_delegate(saved_model):
    flatbuffer = freeze.convert_to_tflite(saved_model, "float")
    default = freeze.TFLiteFunction(flatbuffer)
    builtin = freeze.TFLiteFunction(flatbuffer, kernels="builtin")
    assert default.delegated_nodes() >= 1  # XNNPACK took over (part of) the graph
    assert builtin.delegated_nodes() == 0
    np.testing.assert_allclose(builtin(X), default(X), atol=1e-5)
    with pytest.raises(ValueError, match="kernels must be one of"):
        freeze.TFLiteFunction(flatbuffer, kernels="xnnpack")
