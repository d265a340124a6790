import { type DocumentNode, getOperationAST, Kind, type OperationDefinitionNode } from 'graphql';

/**
 * The operation of a document that a request runs: graphql-js'
 * getOperationAST, answered at once for the common document of one
 * operation. The jit switch, the metrics and the WebSocket path all ask it
 * for every operation.
 */
export function operationOf(
  document: DocumentNode,
  operationName?: string | null,
): OperationDefinitionNode | null {
  if (document.definitions.length === 1) {
    const only = document.definitions[0];
    if (only?.kind !== Kind.OPERATION_DEFINITION) return null;
    return operationName == null || only.name?.value === operationName ? only : null;
  }
  return getOperationAST(document, operationName) ?? null;
}
