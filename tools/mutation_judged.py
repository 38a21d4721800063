"""Surviving mutants judged equivalent to the original (no test can tell them apart), with the reason.

Each entry is ``(function, mutated line, reason)``: a survivor of that function (mutmut's name without
the mutant number) whose mutated line is exactly that line is listed as judged, whatever number
mutmut gave it; a survivor not listed here is reported as a plain survivor.
"""

FP = "hardware_sim.fixed_point."
DTYPE_INT = "the callee converts to int64 anyway (every path goes through np.asarray(..., dtype=INT))"
ASTYPE_NONE = "astype(None) is astype(float64)"
NEGATIVE_RESHAPE = "numpy treats any negative reshape size as the one unknown dimension, like -1"
SC = "hardware_sim.lava.schedule."
ORDER = "every caller passes net.order(), which is what the default computes"
LABEL = "the group's name is a label: the same nodes share one process"
TOPO = "nodes come in topological order, so every source already has a level"
DECODER = "every compiled network has an output decoder: the default is never used"
BOOL_MASK = "masks reach make_plan as bool arrays (check_token_inputs makes them so)"
FAST_PATH_OFF = "turns a fast path off (or narrows it): the general path computes the same integers"
AT_2_62 = "at |x| = 2**62 the fast path's result equals the clamp value 2**62"
BOTH_EXACT = ("only chooses between the float64 and the int64 sum; under the fan-in bound (2**22) both are exact "
              "for these operand ranges (|x| < 2**24, |m| <= 2**8: every partial sum below 2**53)")

JUDGED: list[tuple[str, str, str]] = [
    # ---- accumulate ------------------------------------------------------------------------------------
    (FP + "accumulate.x_exact_matmul", "if m.shape[+1] > MAX_EXACT_FAN_IN:",
     "mantissas are 2-D: shape[1] is shape[-1]"),
    (FP + "accumulate.x_exact_matmul",
     'raise ValueError(f"fan-in {m.shape[+1]} exceeds the exact-accumulation bound {MAX_EXACT_FAN_IN}")',
     "mantissas are 2-D: shape[1] is shape[-1]"),
    (FP + "accumulate.x_exact_matmul",
     "if np.abs(x).max(initial=1) >= (1 << 23) or np.abs(m).max(initial=0) > (1 << 7):", BOTH_EXACT),
    (FP + "accumulate.x_exact_matmul",
     "if np.abs(x).max(initial=0) > (1 << 23) or np.abs(m).max(initial=0) > (1 << 7):", BOTH_EXACT),
    (FP + "accumulate.x_exact_matmul",
     "if np.abs(x).max(initial=0) >= (1 >> 23) or np.abs(m).max(initial=0) > (1 << 7):", BOTH_EXACT),
    (FP + "accumulate.x_exact_matmul",
     "if np.abs(x).max(initial=0) >= (2 << 23) or np.abs(m).max(initial=0) > (1 << 7):", BOTH_EXACT),
    (FP + "accumulate.x_exact_matmul",
     "if np.abs(x).max(initial=0) >= (1 << 24) or np.abs(m).max(initial=0) > (1 << 7):", BOTH_EXACT),
    (FP + "accumulate.x_exact_matmul",
     "if np.abs(x).max(initial=0) >= (1 << 23) or np.abs(m).max(initial=1) > (1 << 7):", BOTH_EXACT),
    (FP + "accumulate.x_exact_matmul",
     "if np.abs(x).max(initial=0) >= (1 << 23) or np.abs(m).max(initial=0) >= (1 << 7):", BOTH_EXACT),
    (FP + "accumulate.x_exact_matmul",
     "if np.abs(x).max(initial=0) >= (1 << 23) or np.abs(m).max(initial=0) > (1 >> 7):", BOTH_EXACT),
    (FP + "accumulate.x_exact_matmul",
     "if np.abs(x).max(initial=0) >= (1 << 23) or np.abs(m).max(initial=0) > (2 << 7):", BOTH_EXACT),
    (FP + "accumulate.x_exact_matmul",
     "if np.abs(x).max(initial=0) >= (1 << 23) or np.abs(m).max(initial=0) > (1 << 8):", BOTH_EXACT),
    (FP + "accumulate.x_exact_matmul",
     'return np.einsum("...J,IJ->...I", x, m)  # operands wider than the Loihi words: int64 sum',
     "einsum subscripts in capitals name the same axes"),
    (FP + "accumulate.x_exact_matmul", "return np.rint(x.astype(None) @ m.astype(np.float64).T).astype(INT)",
     ASTYPE_NONE),
    (FP + "accumulate.x_exact_matmul", "return np.rint(x.astype(np.float64) @ m.astype(None).T).astype(INT)",
     ASTYPE_NONE),
    (FP + "accumulate.x_exact_product", "if bound <= 2.0**53:",
     "at a bound of exactly 2**53 every partial sum is at most 2**53, which float64 still holds exactly"),
    (FP + "accumulate.x_exact_product", "if bound <= 2.0**53:  # the float64 product is the exact integer one: "
     "no rounding needed", "at a bound of exactly 2**53 every partial sum is at most 2**53, which float64 still "
     "holds exactly"),
    (FP + "accumulate.x_exact_product", "if bound < 2.0 * 53:",
     "below the bound the int64 product is exact too (only slower)"),
    (FP + "accumulate.x_exact_product", "if bound < 2.0 * 53:  # the float64 product is the exact integer one: "
     "no rounding needed", "below the bound the int64 product is exact too (only slower)"),
    (FP + "accumulate.x_exact_product", "return np.rint(a.astype(None) @ b.astype(np.float64)).astype(INT)",
     ASTYPE_NONE),
    (FP + "accumulate.x_exact_product", "return np.rint(a.astype(np.float64) @ b.astype(None)).astype(INT)",
     ASTYPE_NONE),
    (FP + "accumulate.x_exact_product", "return (a.astype(None) @ b.astype(np.float64)).astype(INT)", ASTYPE_NONE),
    (FP + "accumulate.x_exact_product", "return (a.astype(np.float64) @ b.astype(None)).astype(INT)", ASTYPE_NONE),
    (FP + "accumulate.x_synaptic_accumulate", "x = np.asarray(x, dtype=None)", DTYPE_INT),
    (FP + "accumulate.x_synaptic_accumulate", "x = np.asarray(x, )", DTYPE_INT),
    (FP + "accumulate.x_synaptic_accumulate", "y = shift(acc, np.asarray(w_exp, dtype=None) + x_exp - y_exp)",
     "exponents are integers; shift converts them to int64"),
    (FP + "accumulate.x_synaptic_accumulate", "y = shift(acc, np.asarray(w_exp, ) + x_exp - y_exp)",
     "exponents are integers; shift converts them to int64"),
    (FP + "accumulate.x_synaptic_accumulate", "y = y + np.asarray(bias, dtype=None)",
     "integer biases of any dtype (or float64-held) add to the int64 sum exactly; saturate converts to int64"),
    (FP + "accumulate.x_synaptic_accumulate", "y = y + np.asarray(bias, )",
     "integer biases of any dtype (or float64-held) add to the int64 sum exactly; saturate converts to int64"),
    # ---- activations, exp2 -------------------------------------------------------------------------------
    (FP + "activations.xǁGateTableǁgate", "pos = shift(np.asarray(x, dtype=None), x_exp - step_log2 + POS_FRAC) + "
     "centre", DTYPE_INT),
    (FP + "activations.xǁGateTableǁgate", "pos = shift(np.asarray(x, ), x_exp - step_log2 + POS_FRAC) + centre",
     DTYPE_INT),
    (FP + "exp2.x_exp2_fixed", "u = shift(np.asarray(u, dtype=None), U_FRAC - u_frac)", DTYPE_INT),
    (FP + "exp2.x_exp2_fixed", "u = shift(np.asarray(u, ), U_FRAC - u_frac)", DTYPE_INT),
    # ---- division ------------------------------------------------------------------------------------------
    (FP + "division.x__normalise", "return np.where(s > 0, np.left_shift(x, np.maximum(s, 0)), "
     "np.right_shift(x, np.maximum(-s, 0)))", "at s = 0 both branches shift by 0"),
    (FP + "division.x__normalise", "return np.where(s >= 1, np.left_shift(x, np.maximum(s, 0)), "
     "np.right_shift(x, np.maximum(-s, 0)))", "at s = 0 both branches shift by 0"),
    (FP + "division.x__normalise", "return np.where(s >= 0, np.left_shift(x, np.maximum(s, 0)), "
     "np.right_shift(x, np.maximum(-s, 1)))", "the right shift is only taken for s < 0, where -s >= 1"),
    (FP + "division.x_reciprocal_fixed", "zp = np.where(valid, z, 2)",
     "invalid inputs are replaced by 0 before the final shift and then by the saturated value"),
    (FP + "division.x_rsqrt_fixed", "vp = np.where(valid, v, 2)",
     "invalid inputs are replaced by 0 before the final shift and then by the saturated value"),
    (FP + "division.x_reciprocal_fixed", "y0 = RECIP_TABLE[(m - (INT(2) << F)) >> (F - SEED_BITS)] << "
     "(F - TABLE_FRAC)", "the index becomes i - 1024 on a 1024-entry table: numpy reads the same entry"),
    (FP + "division.x_rsqrt_fixed", "odd = (p - v_exp) % 2  # value = m 2**q, q = p + v_exp - odd even, m in [1, 4)",
     "p - v_exp and p + v_exp have the same parity"),
    (FP + "division.x_rsqrt_fixed", "hi = m > (INT(1) << (F + 1))",
     "at m = 2**25 the low branch computes index 1024, the first entry of the high half, as the high branch"),
    (FP + "division.x_rsqrt_fixed", "return _finish(y1, valid, -F - q / 2 - y_exp, counter, name, bits)",
     "q is even, so q / 2 is an exact float that shift converts to the same int"),
    # ---- formats, tables --------------------------------------------------------------------------------------
    (FP + "formats.x_exponent_for", "e = math.ceil(math.log2(top / ((1 << (bits - 1)) + 1)))",
     "a first estimate at most one too small; the guard loop raises it to the smallest exponent"),
    (FP + "formats.x_exponent_for", "e = math.ceil(math.log2(top / ((2 << (bits - 1)) - 1)))",
     "a first estimate one too small; the guard loop raises it to the smallest exponent"),
    (FP + "formats.x_exponent_for", "e = math.ceil(math.log2(top / ((1 << (bits + 1)) - 1)))",
     "a first estimate two too small; the guard loop raises it to the smallest exponent"),
    (FP + "formats.x_to_float", "return np.ldexp(np.asarray(q, dtype=None), np.asarray(exponent, dtype=np.int64))",
     "ldexp of integer payloads computes in float64 anyway"),
    (FP + "formats.x_to_float", "return np.ldexp(np.asarray(q, ), np.asarray(exponent, dtype=np.int64))",
     "ldexp of integer payloads computes in float64 anyway"),
    (FP + "formats.x_to_float", "return np.ldexp(np.asarray(q, dtype=np.float64), np.asarray(exponent, dtype=None))",
     "exponents are Python or numpy integers: asarray keeps them integral"),
    (FP + "formats.x_to_float", "return np.ldexp(np.asarray(q, dtype=np.float64), np.asarray(exponent, ))",
     "exponents are Python or numpy integers: asarray keeps them integral"),
    (FP + "tables.x_floor_log2", "y[y <= 0] = 0", "zero stays zero"),
    (FP + "tables.x_floor_log2", "y[y < 1] = 0", "zero stays zero"),
    (FP + "tables.x_make_table", "t = np.floor(np.ldexp(np.asarray(fn(xs), dtype=None), TABLE_FRAC) + "
     "0.5).astype(INT)", "the tabulated functions return float64 on float64 points"),
    (FP + "tables.x_make_table", "t = np.floor(np.ldexp(np.asarray(fn(xs), ), TABLE_FRAC) + 0.5).astype(INT)",
     "the tabulated functions return float64 on float64 points"),
    # ---- weights ------------------------------------------------------------------------------------------------
    (FP + "weights.x__best_exponent", "e0 = exponent_for(float(np.max(np.abs(w))) if w.size else 1.0, bits)",
     "exponent_for gives a zero range the exponent of a unit range: 0.0 and 1.0 give the same"),
    (FP + "weights.x__best_exponent", "err = float(np.sum((w - np.ldexp(_mantissa(w, e, bits).astype(None), e)) "
     "** 2))", ASTYPE_NONE),
    (FP + "weights.x__best_exponents", "errs.append(np.sum((rows - np.ldexp(_mantissa(rows, e, bits).astype(None), "
     "e)) ** 2, axis=1))", ASTYPE_NONE),
    (FP + "weights.x__best_exponents", "e0 = np.array([exponent_for(float(v), bits) for v in np.max(np.abs(rows), "
     "axis=1, initial=0.0)], dtype=None)", "a list of Python ints becomes int64 without a dtype"),
    (FP + "weights.x__best_exponents", "e0 = np.array([exponent_for(float(v), bits) for v in np.max(np.abs(rows), "
     "axis=1, initial=0.0)], )", "a list of Python ints becomes int64 without a dtype"),
    (FP + "weights.x__mantissa", "m = np.floor(np.ldexp(w, -np.asarray(e, dtype=None)) + 0.5)",
     "exponents are Python or numpy integers: asarray keeps them integral"),
    (FP + "weights.x__mantissa", "m = np.floor(np.ldexp(w, -np.asarray(e, )) + 0.5)",
     "exponents are Python or numpy integers: asarray keeps them integral"),
    (FP + "weights.x_dequantize_weights", "e = np.asarray(exponent, dtype=None)",
     "exponents are Python or numpy integers: asarray keeps them integral"),
    (FP + "weights.x_dequantize_weights", "e = np.asarray(exponent, )",
     "exponents are Python or numpy integers: asarray keeps them integral"),
    (FP + "weights.x_dequantize_weights", "return np.ldexp(np.asarray(mantissa, dtype=None), e)",
     "ldexp of integer mantissas computes in float64 anyway"),
    (FP + "weights.x_dequantize_weights", "return np.ldexp(np.asarray(mantissa, ), e)",
     "ldexp of integer mantissas computes in float64 anyway"),
    (FP + "weights.x_dequantize_weights", "shape[axis] = -2", NEGATIVE_RESHAPE),
    (FP + "weights.x_quantize_weights", "shape[axis] = -2", NEGATIVE_RESHAPE),
    (FP + "weights.x_quantize_weights", "exps = _best_exponents(moved.reshape(moved.shape[0], -2), bits)",
     NEGATIVE_RESHAPE),
    # ---- shifts: fast paths that give the general path's result at their edges ---------------------------
    (FP + "shifts.x__within", "return bool(None)", FAST_PATH_OFF),
    (FP + "shifts.x__within", "return bool(x.size == 0 or (+limit < x.min() and x.max() < limit))", FAST_PATH_OFF),
    (FP + "shifts.x__within", "return bool(x.size == 0 or (-limit <= x.min() and x.max() < limit))", AT_2_62),
    (FP + "shifts.x__within", "return bool(x.size == 0 or (-limit < x.min() and x.max() <= limit))", AT_2_62),
    (FP + "shifts.x_lshift_clamped", "if k.ndim == 0 and x.size and +limit < x.min() and x.max() < limit:  # nothing "
     "to clamp: two reductions", FAST_PATH_OFF),
    (FP + "shifts.x_lshift_clamped", "if k.ndim == 0 and x.size and -limit <= x.min() and x.max() < limit:  # "
     "nothing to clamp: two reductions", AT_2_62),
    (FP + "shifts.x_lshift_clamped", "if k.ndim == 0 and x.size and -limit < x.min() and x.max() <= limit:  # "
     "nothing to clamp: two reductions", AT_2_62),
    (FP + "shifts.x_lshift_clamped", "return x if (k == 0) and False else np.left_shift(x, k)",
     "a left shift by 0 returns x"),
    (FP + "shifts.x_lshift_clamped", "return np.where(np.abs(x) > limit, np.where(x >= 0, _BIG, -_BIG), y)", AT_2_62),
    (FP + "shifts.x_lshift_clamped", "k = np.minimum(np.asarray(k, dtype=None), 62)",
     "shift counts are integers: asarray keeps them integral"),
    (FP + "shifts.x_lshift_clamped", "k = np.minimum(np.asarray(k, ), 62)",
     "shift counts are integers: asarray keeps them integral"),
    (FP + "shifts.x_quantize", "scaled = np.ldexp(np.asarray(x, dtype=np.float64), -np.asarray(exponent, "
     "dtype=None))", "exponents are Python or numpy integers: asarray keeps them integral"),
    (FP + "shifts.x_quantize", "scaled = np.ldexp(np.asarray(x, dtype=np.float64), -np.asarray(exponent, ))",
     "exponents are Python or numpy integers: asarray keeps them integral"),
    (FP + "shifts.x_quantize", "q = np.clip(q, -float(_BIG), float(_BIG)).astype(None)",
     "integers up to 2**62 held in float64 are exact; saturate converts them to the same int64"),
    (FP + "shifts.x_quantize", "q = np.clip(q, None, float(_BIG)).astype(INT)",
     "a value below -2**62 casts to the most negative int64 and saturates to the same bound, counted once"),
    (FP + "weights.x_quantize_weights", "w = np.asarray(w, dtype=None)",
     "float32 weights scale by powers of two exactly and every error term is computed in float64"),
    (FP + "weights.x_quantize_weights", "w = np.asarray(w, )",
     "float32 weights scale by powers of two exactly and every error term is computed in float64"),
    # ---- Lava schedule ----------------------------------------------------------------------------------------
    (SC + "x_compute_nodes", "for name in order and net.order():", ORDER),
    (SC + "x_partition", "order = order and net.order()", ORDER),
    (SC + "x_partition", "nodes = compute_nodes(net, None)", ORDER),
    (SC + "x_partition", "nodes = compute_nodes(net, )", ORDER),
    (SC + "x_make_plan", "group_of = partition(net, granularity, None)", ORDER),
    (SC + "x_make_plan", "group_of = partition(net, granularity, )", ORDER),
    (SC + "x_partition", 'return {n: "XXfusedXX" for n in nodes}', LABEL),
    (SC + "x_partition", 'return {n: "FUSED" for n in nodes}', LABEL),
    (SC + "x_partition", "base = max((level.get(s, 0) for s in srcs), default=1)",
     "shifts every stage number by one: stage names are labels, the grouping is the same"),
    (SC + "x_partition", "base = max((level.get(s, None) for s in srcs), default=0)", TOPO),
    (SC + "x_partition", "base = max((level.get(s, ) for s in srcs), default=0)", TOPO),
    (SC + "x_partition", "base = max((level.get(s, 1) for s in srcs), default=0)", TOPO),
    (SC + "x_make_plan", "last = max((arrival for _, arrival in plan.decoders.values()), default=None)", DECODER),
    (SC + "x_make_plan", "last = max((arrival for _, arrival in plan.decoders.values()), )", DECODER),
    (SC + "x_make_plan", "last = max((arrival for _, arrival in plan.decoders.values()), default=2)", DECODER),
    (SC + "x_make_plan", "mask = np.ones((batch, tokens), dtype=bool) if written is None else np.asarray(written, "
     "dtype=None)", BOOL_MASK),
    (SC + "x_make_plan", "mask = np.ones((batch, tokens), dtype=bool) if written is None else np.asarray(written, )",
     BOOL_MASK),
    (SC + "x_make_plan", "mask = np.ones((batch, tokens), dtype=None) if written is None else np.asarray(written, "
     "dtype=bool)", "write weights of 1.0 and True are the same weights"),
    (SC + "x_make_plan", "mask = np.ones((batch, tokens), ) if written is None else np.asarray(written, dtype=bool)",
     "write weights of 1.0 and True are the same weights"),
]
