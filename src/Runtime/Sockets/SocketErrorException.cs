using BpfJit.Frontend;

namespace BpfJit.Runtime.Sockets;

/// <summary>A socket or hook operation the kernel would fail with an errno (bind conflict, 65th link, bad state).</summary>
public sealed class SocketErrorException : BpfException
{
    /// <summary>Creates an error carrying the positive <paramref name="errno"/>.</summary>
    public SocketErrorException(int errno, string message) : base($"{message} ({Runtime.Errno.Name(errno)})") => Errno = errno;

    /// <summary>The positive errno value.</summary>
    public int Errno { get; }
}
