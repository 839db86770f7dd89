// The schemas the JSON mapping tests parse, as text in a module (so the tests need no --allow-read).

/** Every field kind and well-known type the mapping handles. */
export const JSON_MAPPING_TEST_PROTO =
  `// Messages for rpc/http/json_mapping_test.ts: every field kind the proto3 JSON mapping treats differently.
syntax = "proto3";

package jsontest;

import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Color {
  option allow_alias = true;
  COLOR_UNSPECIFIED = 0;
  RED = 1;
  CRIMSON = 1;
  GREEN = 2;
}

message Scalars {
  double f_double = 1;
  float f_float = 2;
  int32 f_int32 = 3;
  int64 f_int64 = 4;
  uint32 f_uint32 = 5;
  uint64 f_uint64 = 6;
  sint32 f_sint32 = 7;
  sint64 f_sint64 = 8;
  fixed32 f_fixed32 = 9;
  fixed64 f_fixed64 = 10;
  sfixed32 f_sfixed32 = 11;
  sfixed64 f_sfixed64 = 12;
  bool f_bool = 13;
  string f_string = 14;
  bytes f_bytes = 15;
  Color color = 16;
  int32 renamed = 17 [json_name = "customName"];
  Nested nested = 18;
}

message Nested {
  string name = 1;
  int64 count = 2;
  repeated Nested children = 3;
}

message Presence {
  optional int32 opt_int32 = 1;
  optional string opt_string = 2;
  optional Color opt_color = 3;
  optional double opt_double = 4;
  optional int64 opt_int64 = 5;
  oneof choice {
    int64 pick_int64 = 6;
    string pick_string = 7;
    Nested pick_nested = 8;
    google.protobuf.NullValue pick_null = 9;
    google.protobuf.Value pick_value = 10;
  }
  double plain_double = 11;
}

message Collections {
  repeated int32 r_int32 = 1;
  repeated int64 r_int64 = 2;
  repeated string r_string = 3;
  repeated bytes r_bytes = 4;
  repeated Color r_color = 5;
  repeated Nested r_nested = 6;
  repeated double r_double = 7;
  map<string, int64> by_name = 8;
  map<int32, string> by_int32 = 9;
  map<int64, Nested> by_int64 = 10;
  map<uint64, string> by_uint64 = 11;
  map<bool, string> by_bool = 12;
  map<string, Color> colors = 13;
  map<string, bytes> blobs = 14;
  map<sint64, string> by_sint64 = 15;
  map<uint32, string> by_uint32 = 16;
}

message WellKnown {
  google.protobuf.Timestamp ts = 1;
  google.protobuf.Duration dur = 2;
  google.protobuf.FieldMask mask = 3;
  google.protobuf.Struct st = 4;
  google.protobuf.Value val = 5;
  google.protobuf.ListValue list = 6;
  google.protobuf.Any any = 7;
  google.protobuf.Empty empty = 8;
  google.protobuf.DoubleValue w_double = 9;
  google.protobuf.FloatValue w_float = 10;
  google.protobuf.Int64Value w_int64 = 11;
  google.protobuf.UInt64Value w_uint64 = 12;
  google.protobuf.Int32Value w_int32 = 13;
  google.protobuf.UInt32Value w_uint32 = 14;
  google.protobuf.BoolValue w_bool = 15;
  google.protobuf.StringValue w_string = 16;
  google.protobuf.BytesValue w_bytes = 17;
  repeated google.protobuf.Any anys = 18;
  repeated google.protobuf.Value values = 19;
  map<string, google.protobuf.Value> value_map = 20;
  repeated google.protobuf.Timestamp stamps = 21;
  google.protobuf.NullValue null_value = 22;
}
`;

/** Our stand-in for the conformance suite's request and error messages (own definitions, not upstream's). */
export const CONFORMANCE_MESSAGES_PROTO =
  `// Our own stand-in for the few messages of the Connect conformance suite that json_mapping_test.ts reads cases of
// (../shared/conformance/*.yaml): the type and field names its JSON uses, field numbers of our choosing. Not the
// upstream .proto; only what these cases need.
syntax = "proto3";

package connectrpc.conformance.v1;

import "google/protobuf/any.proto";

enum Code {
  CODE_UNSPECIFIED = 0;
  CODE_CANCELED = 1;
  CODE_UNKNOWN = 2;
  CODE_INVALID_ARGUMENT = 3;
  CODE_DEADLINE_EXCEEDED = 4;
  CODE_NOT_FOUND = 5;
}

message Header {
  string name = 1;
  repeated string value = 2;
}

message Error {
  Code code = 1;
  optional string message = 2;
  repeated google.protobuf.Any details = 3;
}

message UnaryResponseDefinition {
  repeated Header response_headers = 1;
  oneof response {
    bytes response_data = 2;
    Error error = 3;
  }
  repeated Header response_trailers = 4;
  uint32 response_delay_ms = 5;
}

message UnaryRequest {
  UnaryResponseDefinition response_definition = 1;
  bytes request_data = 2;
}

message StreamResponseDefinition {
  repeated Header response_headers = 1;
  repeated bytes response_data = 2;
  uint32 response_delay_ms = 3;
  Error error = 4;
  repeated Header response_trailers = 5;
}

message ServerStreamRequest {
  StreamResponseDefinition response_definition = 1;
  bytes request_data = 2;
}

message ConformancePayload {
  bytes data = 1;
  RequestInfo request_info = 2;

  message RequestInfo {
    repeated Header request_headers = 1;
    optional int64 timeout_ms = 2;
    repeated google.protobuf.Any requests = 3;
  }
}
`;
