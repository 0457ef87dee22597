//! Vector store on a Qdrant server, through `qdrant-client` (gRPC).
