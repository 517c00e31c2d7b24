namespace Forwarder.Metrics;

/// <summary>Why this node refused a link a peer opened (or a relay refused a node's session).</summary>
internal enum LinkRefusal
{
    /// <summary>No certificate, one that does not chain to the mesh CA, or no TLS at all.</summary>
    Certificate,

    /// <summary>A mesh certificate, but not for the role: a relay's where a node's was needed, or none at all.</summary>
    Role,

    /// <summary>A node's certificate, but the node is not among the peers this node admits.</summary>
    Unlisted,
}

/// <summary>Why this node refused a stream a peer's link or a relay brought.</summary>
internal enum StreamRefusal
{
    /// <summary>The target is not an endpoint of a service this node exports.</summary>
    NotExported,

    /// <summary>The stream came through a relay from a node not among the peers this node admits.</summary>
    Unlisted,
}
