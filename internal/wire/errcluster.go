package wire

// ErrCrossCluster is sluice's answer to a statement, or a statement in a
// transaction, that would touch objects placed on two clusters: nothing
// of it runs (sluice never splits a statement or a transaction).
const ErrCrossCluster uint16 = 9005
