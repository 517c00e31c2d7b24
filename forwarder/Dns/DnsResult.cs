namespace Forwarder.Dns;

/// <summary>How a query was answered, for forwarder_dns_queries_total{result}.</summary>
internal enum DnsResult
{
    /// <summary>Answered from the cluster model with records.</summary>
    Answer,

    /// <summary>A cluster name that exists without records of the type asked.</summary>
    NoData,

    /// <summary>A name in the cluster domain that does not exist.</summary>
    NxDomain,

    /// <summary>Sent to an upstream resolver and relayed.</summary>
    Forwarded,

    /// <summary>Answered from the cache of upstream answers.</summary>
    Cached,

    /// <summary>No upstream answered in time (or all failed).</summary>
    ServFail,

    FormErr,

    NotImp,

    /// <summary>A class other than IN in the cluster domain.</summary>
    Refused,
}
