//! The part of ONNX's protobuf schema (`onnx/onnx.proto3`, IR version 3 and later) that the
//! importer reads, as `prost` messages. Field numbers are the schema's; fields left out here
//! (training info, functions, sparse initialisers, subgraph attributes, ...) are skipped by the
//! decoder, and the importer refuses models that would need them.

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
    /// Model-local functions (the dynamo exporter may emit them); their presence is reported.
    #[prost(bytes = "vec", repeated, tag = "25")]
    pub functions: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(string, tag = "7")]
    pub domain: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// Set when the attribute refers to a function's attribute (only inside functions).
    #[prost(string, tag = "21")]
    pub ref_attr_name: String,
    /// `AttributeProto.AttributeType`; readers such as onnxruntime require it.
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// `AttributeProto.AttributeType` values the writer uses.
pub mod attribute_type {
    pub const FLOAT: i32 = 1;
    pub const INT: i32 = 2;
    pub const STRING: i32 = 3;
    pub const INTS: i32 = 7;
}

/// `TensorProto.DataType` values the importer reads.
pub mod data_type {
    pub const FLOAT: i32 = 1;
    /// TensorFlow's exporter writes shapes and indices as int32.
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// Present when the values live in another file, which a browser cannot open.
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    /// Only tensor types are read; a sequence, map or optional input leaves this empty.
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorTypeProto {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

impl TensorProto {
    /// The values as f32 (FLOAT tensors only), checking their count against the dims.
    pub fn floats(&self) -> Result<Vec<f32>, String> {
        if !self.external_data.is_empty() {
            return Err(format!("tensor `{}` keeps its values in an external file: re-export the model with its weights inside the .onnx file", self.name));
        }
        if self.data_type != data_type::FLOAT {
            return Err(format!("tensor `{}` has data type {} (only FLOAT, 1, is read)", self.name, self.data_type));
        }
        let values: Vec<f32> = if self.raw_data.is_empty() {
            self.float_data.clone()
        } else {
            if self.raw_data.len() % 4 != 0 {
                return Err(format!("tensor `{}`: raw data of {} bytes is not a whole number of floats", self.name, self.raw_data.len()));
            }
            self.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        };
        self.check_count(values.len())?;
        Ok(values)
    }

    /// The values as i64 (INT64 tensors only: shapes, axes).
    pub fn int64s(&self) -> Result<Vec<i64>, String> {
        if self.data_type != data_type::INT64 {
            return Err(format!("tensor `{}` has data type {} where INT64 (7) is expected", self.name, self.data_type));
        }
        let values: Vec<i64> = if self.raw_data.is_empty() {
            self.int64_data.clone()
        } else {
            self.raw_data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect()
        };
        self.check_count(values.len())?;
        Ok(values)
    }

    /// The values of an INT32 tensor (tf2onnx's shapes), widened to i64.
    pub fn int32s(&self) -> Result<Vec<i64>, String> {
        if self.data_type != data_type::INT32 {
            return Err(format!("tensor `{}` has data type {} where INT32 (6) is expected", self.name, self.data_type));
        }
        let values: Vec<i64> = if self.raw_data.is_empty() {
            self.int32_data.iter().map(|&v| i64::from(v)).collect()
        } else {
            self.raw_data.chunks_exact(4).map(|b| i64::from(i32::from_le_bytes(b.try_into().expect("4 bytes")))).collect()
        };
        self.check_count(values.len())?;
        Ok(values)
    }

    fn check_count(&self, n: usize) -> Result<(), String> {
        let expected = self.dims.iter().try_fold(1usize, |a, &d| usize::try_from(d).ok().and_then(|d| a.checked_mul(d)));
        if expected != Some(n) {
            return Err(format!("tensor `{}` holds {n} values but its dims are {:?}", self.name, self.dims));
        }
        Ok(())
    }
}
