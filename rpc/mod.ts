/**
 * The RPC layer: Application, Provider, Channel and Controller on protobuf, written on the reactor and
 * discovered through the registry.
 *
 * @module
 */
export {};
