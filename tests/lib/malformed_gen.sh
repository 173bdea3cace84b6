#!/usr/bin/env bash
# tests/lib/malformed_gen.sh OUTDIR — write one defective input per defect class and format
# into OUTDIR, and print a manifest on stdout, one case per line:
#   NAME KIND PATH
# KIND says how the CLI is pointed at it (tests/e2e/malformed.sh and tests/valgrind.sh run it):
#   model   PATH is a model file or HF directory:    cce info PATH / cce eval PATH --tokenizer tok512.bin
#   hfdir   PATH is an HF directory whose model is fine but whose tokenizer.json is not:
#                                                    cce eval PATH (tokenizer.json loaded beside it)
#   tok     PATH is a defective llama2.c tokenizer:  cce eval stories260K.bin --tokenizer PATH
#   valid   PATH is a correct model (a control: the defects around it are the only reason to fail)
#   listable PATH is a well-formed file the engine cannot run: cce info lists it, eval refuses
# Every error message must name PATH's last component (the file, or the directory for HF).
# Needs $CCE_DATA (real files are cut and patched to make some cases). Plain bash + head/dd.
set -eu
OUT=$1
D=${CCE_DATA:?CCE_DATA not set}
export LC_ALL=C
mkdir -p "$OUT"

# ---- little-endian byte writers ----
bytes() { local v o; for v in "$@"; do printf -v o %03o $((v & 255)); printf "\\$o"; done; }  # no forks
le32() { local v=$1; bytes $v $((v >> 8)) $((v >> 16)) $((v >> 24)); }
le64() { local v=$1; le32 $((v & 0xffffffff)); le32 $(((v >> 32) & 0xffffffff)); }
f32_one() { bytes 0 0 128 63; }  # 1.0f
case_() { echo "$1 $2 $3"; }     # name kind path

# ---- llama2.c checkpoints ----
l2c_hdr() { local v; for v in "$@"; do le32 "$v"; done; }
L2=$D/llama2c/stories260K.bin
: > "$OUT/l2c_zero.bin";                                   case_ l2c_zero model "$OUT/l2c_zero.bin"
head -c 20 "$L2" > "$OUT/l2c_short_header.bin";            case_ l2c_short_header model "$OUT/l2c_short_header.bin"
head -c 100000 "$L2" > "$OUT/l2c_truncated.bin";           case_ l2c_truncated model "$OUT/l2c_truncated.bin"
{ cat "$L2"; bytes 1 2 3 4; } > "$OUT/l2c_trailing.bin";   case_ l2c_trailing model "$OUT/l2c_trailing.bin"
{ l2c_hdr -64 172 5 8 4 512 512; tail -c +29 "$L2"; } > "$OUT/l2c_neg_dim.bin";      case_ l2c_neg_dim model "$OUT/l2c_neg_dim.bin"
{ l2c_hdr 64 172 0 8 4 512 512; tail -c +29 "$L2"; } > "$OUT/l2c_zero_layers.bin";   case_ l2c_zero_layers model "$OUT/l2c_zero_layers.bin"
{ l2c_hdr 64 172 5 0 4 512 512; tail -c +29 "$L2"; } > "$OUT/l2c_zero_heads.bin";    case_ l2c_zero_heads model "$OUT/l2c_zero_heads.bin"
{ l2c_hdr 64 172 5 7 4 512 512; tail -c +29 "$L2"; } > "$OUT/l2c_heads_nodiv.bin";   case_ l2c_heads_nodiv model "$OUT/l2c_heads_nodiv.bin"
{ l2c_hdr 64 172 5 8 3 512 512; tail -c +29 "$L2"; } > "$OUT/l2c_kv_nodiv.bin";      case_ l2c_kv_nodiv model "$OUT/l2c_kv_nodiv.bin"
{ l2c_hdr 2147483647 2147483647 2147483647 1 1 2147483647 2147483647; } > "$OUT/l2c_overflow.bin"
case_ l2c_overflow model "$OUT/l2c_overflow.bin"
{ l2c_hdr 65536 65536 65536 1 1 -2147483648 65536; head -c 4096 /dev/zero; } > "$OUT/l2c_vocab_min.bin"
case_ l2c_vocab_min model "$OUT/l2c_vocab_min.bin"

# ---- llama2.c tokenizer.bin (with the valid stories260K model) ----
TK=$D/llama2c/tok512.bin
: > "$OUT/tok_zero.bin";                                   case_ tok_zero tok "$OUT/tok_zero.bin"
head -c 3000 "$TK" > "$OUT/tok_truncated.bin";             case_ tok_truncated tok "$OUT/tok_truncated.bin"
{ le32 7; f32_one; le32 2147483647; printf 'abc'; } > "$OUT/tok_len_huge.bin";  case_ tok_len_huge tok "$OUT/tok_len_huge.bin"
{ le32 7; f32_one; le32 -5; printf 'abc'; } > "$OUT/tok_len_neg.bin";          case_ tok_len_neg tok "$OUT/tok_len_neg.bin"
{ le32 -1; tail -c +5 "$TK"; } > "$OUT/tok_maxlen_neg.bin";                    case_ tok_maxlen_neg tok "$OUT/tok_maxlen_neg.bin"

# ---- GGUF: a minimal file with one KV pair and one tensor, each field overridable ----
# gguf NAME [VAR=VALUE ...]: version, nt (tensor count), nkv, keylen (length field of the key),
# vtype (value type), strlen (length field of the value), ndims, dim0, gtype, toff (tensor
# offset), align (general.alignment value; "" = no key), extra (bytes appended).
gguf() {
    local name=$1; shift
    local version=3 nt=1 nkv=1 keylen="" vtype=8 strlen="" ndims=1 dim0=8 gtype=0 toff=0 align="" arch=llama dup=0 kind=model
    local kv; for kv in "$@"; do local "$kv"; done
    local key=general.architecture
    [ -n "$align" ] && nkv=$((nkv + 1))
    {
        printf GGUF; le32 $version; le64 $nt; le64 $nkv
        le64 ${keylen:-${#key}}; printf %s "$key"; le32 $vtype; le64 ${strlen:-${#arch}}; printf %s "$arch"
        if [ -n "$align" ]; then le64 17; printf general.alignment; le32 4; le32 "$align"; fi
        local i; for ((i = 0; i < (dup ? 2 : 1); i++)); do
            le64 1; printf t; le32 $ndims; local d; for ((d = 0; d < ndims && d < 8; d++)); do le64 $([ $d = 0 ] && echo "$dim0" || echo 1); done
            le32 $gtype; le64 $toff
        done
    } > "$OUT/$name.gguf"
    local n; n=$(stat -c %s "$OUT/$name.gguf"); local a=${align:-32}; [ "$a" -gt 0 ] 2>/dev/null || a=32
    head -c $(( (a - n % a) % a + 32 )) /dev/zero >> "$OUT/$name.gguf"
    case_ "$name" "$kind" "$OUT/$name.gguf"
}
printf GGU > "$OUT/gguf_magic_only.gguf";                  case_ gguf_magic_only model "$OUT/gguf_magic_only.gguf"
head -c 10000 "$D/gguf/stories260K.gguf" > "$OUT/gguf_truncated_meta.gguf";  case_ gguf_truncated_meta model "$OUT/gguf_truncated_meta.gguf"
head -c 20000 "$D/gguf/stories260K.gguf" > "$OUT/gguf_truncated_data.gguf";  case_ gguf_truncated_data model "$OUT/gguf_truncated_data.gguf"
gguf gguf_version1 version=1
gguf gguf_version4 version=4
gguf gguf_ntensors_huge nt=4611686018427387904
gguf gguf_nkv_huge nkv=4611686018427387904
gguf gguf_keylen_huge keylen=-16
gguf gguf_keylen_past_end keylen=100000
gguf gguf_strlen_wrap strlen=-1
gguf gguf_unknown_vtype vtype=99
gguf gguf_arch_wrong_type vtype=4
gguf gguf_ndims_zero ndims=0
gguf gguf_ndims_5 ndims=5
gguf gguf_dim_zero dim0=0
gguf gguf_dim_overflow dim0=-1
gguf gguf_unknown_ggml_type gtype=99
gguf gguf_offset_past_end toff=4096
gguf gguf_offset_misaligned toff=4
gguf gguf_offset_wrap toff=-32
gguf gguf_align_zero align=0
gguf gguf_align_3 align=3
gguf gguf_dup_tensor nt=2 dup=1
gguf gguf_other_arch arch=gpt2 kind=listable
gguf gguf_llama_no_config kind=listable   # valid GGUF, incomplete model: `cce info` lists it (issue 10), eval refuses

# ---- safetensors: bare file (info) and as the model of an HF directory (eval) ----
CFG_LLAMA='{"architectures":["LlamaForCausalLM"],"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":16,"max_position_embeddings":32,"rms_norm_eps":1e-05,"tie_word_embeddings":false}'
st_raw() {  # st_raw FILE HEADER_LEN_FIELD JSON DATA_BYTES
    { le64 "$2"; printf %s "$3"; head -c "$4" /dev/zero; } > "$1"
}
st() {  # st NAME JSON DATA_BYTES [HEADER_LEN_FIELD]
    local name=$1 json=$2 nb=$3 hl=${4:-}
    st_raw "$OUT/$name.safetensors" "${hl:-${#json}}" "$json" "$nb"
    case_ "$name" model "$OUT/$name.safetensors"
    mkdir -p "$OUT/${name}_dir"
    st_raw "$OUT/${name}_dir/model.safetensors" "${hl:-${#json}}" "$json" "$nb"
    printf %s "$CFG_LLAMA" > "$OUT/${name}_dir/config.json"
    case_ "${name}_dir" model "$OUT/${name}_dir"
}
T1='"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
: > "$OUT/st_zero.safetensors";                            case_ st_zero model "$OUT/st_zero.safetensors"
bytes 1 2 3 > "$OUT/st_short.safetensors";                 case_ st_short model "$OUT/st_short.safetensors"
st st_hdr_huge "{$T1}" 8 9223372036854775807
st st_hdr_wrap "{$T1}" 8 -1
st st_hdr_past_end "{$T1}" 8 4000
st st_hdr_over_100mb "{$T1}" 8 100000001
st st_bad_json "{$T1" 8
st st_trailing_garbage "{$T1} x" 8
st st_not_object "[1,2]" 0
st st_unknown_dtype '{"a":{"dtype":"X9","shape":[2],"data_offsets":[0,8]}}' 8
st st_shape_overflow '{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}' 8
st st_shape_wrap_zero '{"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}' 8
st st_shape_negative '{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}' 8
st st_shape_float '{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}' 8
st st_shape_string '{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}' 8
st st_dims_9 '{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]}}' 8
st st_end_before_begin '{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}' 8
st st_offset_past_end '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}' 8
st st_overlap '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12
st st_hole '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}' 20
st st_size_mismatch '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}' 8
st st_duplicate_name "{$T1,$T1}" 8
st st_bad_utf8_name "$(printf '{"\xff\xfe":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}')" 8
st st_metadata_not_string '{"__metadata__":{"k":5},'"$T1}" 8
st st_deep_nesting "{\"a\":$(head -c 100000 /dev/zero | tr '\0' '[')}" 0

# ---- HF directories: a valid tiny Llama (F32 zeros) with a defective config.json ----
tiny_llama_st() {  # tiny_llama_st FILE [F32|F16]: the tiny Llama of tests/fuzz/tiny_models.h, no biases, 1 layer
    local dtype=${2:-F32} es=4 json='{' off=0 first=1 spec name a b n
    [ "$dtype" = F16 ] && es=2
    for spec in model.embed_tokens.weight:16:8 model.layers.0.input_layernorm.weight:8:0 \
        model.layers.0.post_attention_layernorm.weight:8:0 model.layers.0.self_attn.q_proj.weight:8:8 \
        model.layers.0.self_attn.k_proj.weight:4:8 model.layers.0.self_attn.v_proj.weight:4:8 \
        model.layers.0.self_attn.o_proj.weight:8:8 model.layers.0.mlp.gate_proj.weight:16:8 \
        model.layers.0.mlp.up_proj.weight:16:8 model.layers.0.mlp.down_proj.weight:8:16 \
        model.norm.weight:8:0 lm_head.weight:16:8; do
        IFS=: read -r name a b <<<"$spec"
        if [ "$b" = 0 ]; then n=$((a * es)); sh="[$a]"; else n=$((a * b * es)); sh="[$a,$b]"; fi
        [ $first = 1 ] || json+=','; first=0
        json+="\"$name\":{\"dtype\":\"$dtype\",\"shape\":$sh,\"data_offsets\":[$off,$((off + n))]}"
        off=$((off + n))
    done
    json+='}'
    while [ $(( ${#json} % 8 )) -ne 0 ]; do json+=' '; done
    { le64 ${#json}; printf %s "$json"; head -c $off /dev/zero | tr '\0' '\074'; } > "$1"  # 0x3c3c...: f32 ~0.0115, f16 ~1.06
}
tiny_llama_st "$OUT/tiny_llama.safetensors"
cfg() {  # cfg NAME JSON
    mkdir -p "$OUT/$1"; cp "$OUT/tiny_llama.safetensors" "$OUT/$1/model.safetensors"
    printf %s "$2" > "$OUT/$1/config.json"; case_ "$1" model "$OUT/$1"
}
with() { printf %s "$CFG_LLAMA" | sed "s/\"$1\":[^,}]*/\"$1\":$2/"; }
without() { local j=$CFG_LLAMA; j=$(printf %s "$j" | sed "s/\"$1\":[^,}]*,\?//"); printf %s "$j"; }
mkdir -p "$OUT/ctl_tiny_llama"; cp "$OUT/tiny_llama.safetensors" "$OUT/ctl_tiny_llama/model.safetensors"
printf %s "$CFG_LLAMA" > "$OUT/ctl_tiny_llama/config.json"; case_ ctl_tiny_llama valid "$OUT/ctl_tiny_llama"
mkdir -p "$OUT/ctl_tiny_llama_f16"; tiny_llama_st "$OUT/ctl_tiny_llama_f16/model.safetensors" F16
printf %s "$CFG_LLAMA" > "$OUT/ctl_tiny_llama_f16/config.json"; case_ ctl_tiny_llama_f16 valid "$OUT/ctl_tiny_llama_f16"
cfg cfg_empty ''
cfg cfg_bad_json '{"hidden_size":8'
cfg cfg_trailing_garbage "$CFG_LLAMA}"
cfg cfg_not_object '[]'
cfg cfg_deep_nesting "$(head -c 100000 /dev/zero | tr '\0' '[')"
cfg cfg_missing_hidden "$(without hidden_size)"
cfg cfg_missing_layers "$(without num_hidden_layers)"
cfg cfg_negative_hidden "$(with hidden_size -8)"
cfg cfg_zero_heads "$(with num_attention_heads 0)"
cfg cfg_string_layers "$(with num_hidden_layers '"1"')"
cfg cfg_float_vocab "$(with vocab_size 16.5)"
cfg cfg_huge_hidden "$(with hidden_size 1e300)"
cfg cfg_heads_nodiv "$(with num_attention_heads 3)"
cfg cfg_kv_nodiv "$(with num_key_value_heads 3)"
cfg cfg_kv_gt_heads "$(with num_key_value_heads 4)"
cfg cfg_shape_mismatch "$(with intermediate_size 32)"
cfg cfg_vocab_mismatch "$(with vocab_size 17)"
cfg cfg_unknown_arch "$(with architectures '["BertModel"]')"
cfg cfg_arch_not_array "$(with architectures 5)"
cfg cfg_eps_negative "$(with rms_norm_eps -1)"
mkdir -p "$OUT/hf_no_weights"; printf %s "$CFG_LLAMA" > "$OUT/hf_no_weights/config.json"; case_ hf_no_weights model "$OUT/hf_no_weights"
mkdir -p "$OUT/hf_index_traversal"; printf %s "$CFG_LLAMA" > "$OUT/hf_index_traversal/config.json"
printf '{"weight_map":{"model.embed_tokens.weight":"../tiny_llama.safetensors"}}' > "$OUT/hf_index_traversal/model.safetensors.index.json"
case_ hf_index_traversal model "$OUT/hf_index_traversal"

# ---- HF tokenizer.json: valid tiny model, defective tokenizer beside it ----
tokj() {  # tokj NAME JSON
    mkdir -p "$OUT/$1"; cp "$OUT/tiny_llama.safetensors" "$OUT/$1/model.safetensors"
    printf %s "$CFG_LLAMA" > "$OUT/$1/config.json"; printf %s "$2" > "$OUT/$1/tokenizer.json"; case_ "$1" hfdir "$OUT/$1"
}
V='"a":3,"b":4,"ab":5'
tokj tokj_empty ''
tokj tokj_bad_json '{"model":{"type":"BPE","vocab":{'
tokj tokj_trailing_garbage "{\"model\":{\"type\":\"BPE\",\"vocab\":{$V},\"merges\":[\"a b\"]}} junk"
tokj tokj_deep_nesting "{\"model\":$(head -c 100000 /dev/zero | tr '\0' '[')"
tokj tokj_no_model '{"added_tokens":[]}'
tokj tokj_unknown_type '{"model":{"type":"Unigram","vocab":[["a",0.0]]}}'
tokj tokj_id_out_of_range "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":3,\"b\":99999999999},\"merges\":[]}}"
tokj tokj_id_negative "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1,\"b\":4},\"merges\":[]}}"
tokj tokj_id_float "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1.5,\"b\":4},\"merges\":[]}}"
tokj tokj_id_string "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"3\",\"b\":4},\"merges\":[]}}"
tokj tokj_merge_unknown "{\"model\":{\"type\":\"BPE\",\"vocab\":{$V},\"merges\":[\"x y\"]}}"
tokj tokj_merge_not_string "{\"model\":{\"type\":\"BPE\",\"vocab\":{$V},\"merges\":[5]}}"
tokj tokj_added_id_huge "{\"added_tokens\":[{\"id\":4294967296,\"content\":\"<s>\",\"special\":true}],\"model\":{\"type\":\"BPE\",\"vocab\":{$V},\"merges\":[]}}"
tokj tokj_bad_utf8 "$(printf '{"model":{"type":"BPE","vocab":{"\xff":3},"merges":[]}}')"
