using System.Net;
using System.Net.Sockets;
using Forwarder.Transports.Tcp;
using Microsoft.Extensions.Logging;

namespace Forwarder.Relay;

/// <content>
/// The splice port's accepting thread: it takes connections and reads their hellos (the magic
/// and a ticket) by polling them beside the listener, then files each half by its ticket.
/// </content>
internal sealed partial class RelaySplices
{
    /// <summary>How long a connection may take, from its accept, to send its whole ticket.</summary>
    private static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Connections still sending their tickets, at most: anyone can connect here. They cost no
    /// thread: the accepting thread polls them beside the listener (a plain poll, so that .NET's
    /// socket engine never watches a socket the splicer takes over), and each has until
    /// <see cref="HelloTimeout"/> after its accept whatever it trickles.
    /// </summary>
    private const int MaxHellos = 256;

    /// <summary>How long one poll waits, so that deadlines and a stop are seen this often.</summary>
    private const int PollMicroseconds = 100_000;

    /// <summary>
    /// How long the listener is left unpolled after an accept failed for want of descriptors
    /// (EMFILE, ENFILE, ENOBUFS): the connection stays in the backlog and the poll would find it
    /// again at once, spinning a core, as Kestrel and HAProxy back off too.
    /// </summary>
    private const long AcceptBackoffMilliseconds = 500;

    /// <summary>Accepts connections and reads their tickets, all on this one thread, until the relay stops.</summary>
    private void AcceptLoop()
    {
        Dictionary<Socket, Hello> hellos = [];
        List<Socket> readable = [];
        long backoffUntil = 0;
        var starved = false;
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                readable.Clear();
                if (Environment.TickCount64 >= backoffUntil)
                {
                    readable.Add(_listener);
                }

                readable.AddRange(hellos.Keys);
                try
                {
                    if (readable.Count == 0)
                    {
                        // Backing off with no hello waiting: Select wants a socket to watch.
                        _stopping.Token.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(AcceptBackoffMilliseconds));
                        continue;
                    }

                    Socket.Select(readable, null, null, PollMicroseconds);
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    if (_stopping.IsCancellationRequested)
                    {
                        return;
                    }

                    continue;
                }

                foreach (var socket in readable)
                {
                    if (socket == _listener)
                    {
                        var error = Accept(hellos);
                        if (error is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable)
                        {
                            backoffUntil = Environment.TickCount64 + AcceptBackoffMilliseconds;
                            if (!starved)
                            {
                                starved = true;
                                LogAcceptStarved(_logger, EndPoint, error);
                            }
                        }
                        else if (error is SocketError.Success && starved)
                        {
                            starved = false;
                            LogAcceptRecovered(_logger, EndPoint);
                        }
                    }
                    else if (hellos.TryGetValue(socket, out var hello) && hello.Receive() is not Hello.Progress.Partial)
                    {
                        hellos.Remove(socket);
                        Present(socket, hello.Ticket);
                    }
                }

                var now = Environment.TickCount64;
                foreach (var (socket, hello) in hellos)
                {
                    if (now >= hello.Deadline)
                    {
                        hellos.Remove(socket);
                        Present(socket, ticket: null);
                    }
                }
            }
        }
        finally
        {
            foreach (var socket in hellos.Keys)
            {
                socket.Dispose();
            }
        }
    }

    /// <summary>Accepts the connection the poll found; the accept's error (Success when it took one).</summary>
    private SocketError Accept(Dictionary<Socket, Hello> hellos)
    {
        // As the listen port: a few descriptors stay with the runtime, which aborts the process
        // when it finds none, and no connection is taken until they can be held again.
        if (!FileDescriptorReserve.TryHold())
        {
            return SocketError.TooManyOpenSockets;
        }

        Socket socket;
        try
        {
            // The poll found a connection waiting: this does not block.
            socket = _listener.Accept();
        }
        catch (SocketException ex)
        {
            if (ex.SocketErrorCode is SocketError.TooManyOpenSockets)
            {
                FileDescriptorReserve.Release();
            }

            return ex.SocketErrorCode;
        }
        catch (ObjectDisposedException)
        {
            return SocketError.OperationAborted;
        }

        FileDescriptorReserve.Check(socket);

        if (hellos.Count >= MaxHellos)
        {
            _registry.TicketRefused(expired: false);
            socket.Dispose();
            return SocketError.Success;
        }

        // Small TLS records (a request, a window update) must not wait for Nagle to send them.
        socket.NoDelay = true;
        hellos[socket] = new Hello(socket, Environment.TickCount64 + (long)HelloTimeout.TotalMilliseconds);
        return SocketError.Success;
    }

    [LoggerMessage(EventId = 839, Level = LogLevel.Error, Message = "Splice port {EndPoint} cannot accept ({Error}: out of file descriptors?); it tries again every half second (840 says when it can)")]
    private static partial void LogAcceptStarved(ILogger logger, EndPoint endPoint, SocketError error);

    [LoggerMessage(EventId = 840, Level = LogLevel.Information, Message = "Splice port {EndPoint} accepts connections again")]
    private static partial void LogAcceptRecovered(ILogger logger, EndPoint endPoint);

    /// <summary>A connection still sending its magic and ticket.</summary>
    private sealed class Hello(Socket socket, long deadline)
    {
        private readonly byte[] _bytes = new byte[4 + TicketLength];
        private int _read;

        public enum Progress
        {
            Partial,
            Done,
        }

        /// <summary>Environment.TickCount64 by which the whole hello must be in.</summary>
        public long Deadline { get; } = deadline;

        /// <summary>The ticket, once the whole hello came and starts with the magic; else null.</summary>
        public string? Ticket { get; private set; }

        /// <summary>Takes what the poll found waiting (never blocks); Done once the hello is whole, closed, or failed.</summary>
        public Progress Receive()
        {
            var received = socket.Receive(_bytes, _read, _bytes.Length - _read, SocketFlags.None, out var error);
            if (error != SocketError.Success || received == 0)
            {
                return Progress.Done;
            }

            _read += received;
            if (_read < _bytes.Length)
            {
                return Progress.Partial;
            }

            Ticket = _bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic) ? Convert.ToHexStringLower(_bytes.AsSpan(Magic.Length)) : null;
            return Progress.Done;
        }
    }
}
