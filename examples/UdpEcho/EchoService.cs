using BpfJit.Runtime;
using BpfJit.Runtime.Loading;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Verifier;

namespace BpfJit.Examples.UdpEcho;

/// <summary>
/// The example's configuration: four echo sockets and <c>bpf/steer.o</c> attached in front of them.
/// <list type="table">
/// <item><term><c>range</c> on port 7000</term><description>also every port 7000-7009, steered by the program (map slot 0)</description></item>
/// <item><term><c>address</c> on port 9000</term><description>also every port on 10.77.0.2 and fd77::2, steered by the program (map slot 1)</description></item>
/// <item><term><c>plain</c> on port 5000</term><description>reached by the ordinary listener lookup (the program returns SK_PASS)</description></item>
/// <item><term><c>blocked</c> on port 7777</term><description>never reached: the program drops port 7777</description></item>
/// </list>
/// Any other port has no socket.
/// </summary>
public static class EchoService
{
    /// <summary>The object next to the executable.</summary>
    public static string DefaultObjectPath => Path.Combine(AppContext.BaseDirectory, "steer.o");

    /// <summary>Builds the stack: installs the verifier, opens the sockets, loads, verifies and attaches the program.</summary>
    /// <exception cref="Frontend.BpfException">The object could not be loaded or its program was rejected.</exception>
    public static EchoStack Create(string objectPath, IBpfEngine engine, int ingressIfindex = 1)
    {
        // [setup]
        // Once per process: object programs are verified before they run.
        ProgramVerification.Verifier ??= new SkLookupProgramVerifier();

        var stack = new EchoStack(ingressIfindex);
        // [/setup]
        try
        {
            // [attach]
            Sock range = stack.Open("range", 7000, EchoStack.Echo("range"));
            Sock address = stack.Open("address", 9000, EchoStack.Echo("address"));
            stack.Open("plain", 5000, EchoStack.Echo("plain"));
            stack.Open("blocked", 7777, EchoStack.Echo("blocked"));

            // Maps created and filled from the object, every SK_LOOKUP program verified, bound and prepared on the engine.
            BpfCollection steer = BpfCollection.Load(objectPath, new CollectionOptions { Engine = engine });
            var slots = (SockMap)steer.Map("steer_sockets");
            Check(slots.Update(0, range), "steer_sockets[0] = range");
            Check(slots.Update(1, address), "steer_sockets[1] = address");
            stack.Namespace.SkLookup.Attach(steer.Program("steer"));
            // [/attach]
        }
        catch
        {
            stack.Dispose();
            throw;
        }
        return stack;
    }

    static void Check(int err, string what)
    {
        if (err != 0) throw new SocketErrorException(-err, what);
    }
}
