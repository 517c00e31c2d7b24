using System.Net.Sockets;
using Forwarder.Metrics;
using Forwarder.Runtime;

namespace Forwarder.Tests.Runtime;

public sealed class UpstreamConnectorTests
{
    [Theory]
    [InlineData(SocketError.TooManyOpenSockets)]
    [InlineData(SocketError.NoBufferSpaceAvailable)]
    [InlineData(SocketError.AddressNotAvailable)]
    [InlineData(SocketError.AddressAlreadyInUse)]
    public void Classify_ErrorsRaisedBeforeASynLeaves_AreLocal(SocketError error)
        => Assert.Equal(ConnectFailure.Local, UpstreamConnector.Classify(error));

    [Theory]
    [InlineData(SocketError.ConnectionRefused, nameof(ConnectFailure.Refused))]
    [InlineData(SocketError.TimedOut, nameof(ConnectFailure.Timeout))]
    [InlineData(SocketError.HostUnreachable, nameof(ConnectFailure.Unreachable))]
    [InlineData(SocketError.NetworkUnreachable, nameof(ConnectFailure.Unreachable))]
    [InlineData(SocketError.ConnectionReset, nameof(ConnectFailure.Other))]
    public void Classify_TheEndpointsFaults_AreNotLocal(SocketError error, string expected)
        => Assert.Equal(expected, UpstreamConnector.Classify(error).ToString());

    [Fact]
    public void AcceptFailures_OutOfDescriptors_IsFdLimit()
    {
        Assert.Equal(AcceptFailure.FdLimit, AcceptFailures.Classify(new SocketException((int)SocketError.TooManyOpenSockets)));
        Assert.Equal("fd_limit", AcceptFailures.Label(AcceptFailure.FdLimit));
        Assert.Equal(AcceptFailure.Other, AcceptFailures.Classify(new SocketException((int)SocketError.ConnectionReset)));
    }
}
