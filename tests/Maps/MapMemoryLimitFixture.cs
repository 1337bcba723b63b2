using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Tests.Maps;

/// <summary>
/// A fixture whose tests change <see cref="MapMemory.Limit"/>: it is saved before each test (and set to
/// <see cref="TestLimit"/> when one is given) and restored after it. The socket maps are registered with the factory.
/// </summary>
public abstract class MapMemoryLimitFixture
{
    /// <summary>The limit before the test.</summary>
    protected long SavedLimit { get; private set; }

    /// <summary>The limit each test starts with; null keeps the host's.</summary>
    protected virtual long? TestLimit => null;

    /// <summary>Saves the limit and sets <see cref="TestLimit"/>.</summary>
    [SetUp]
    public void SetMapMemoryLimit()
    {
        SocketMapBase.Register();
        SavedLimit = MapMemory.Limit;
        if (TestLimit is { } limit) MapMemory.Limit = limit;
    }

    /// <summary>Restores the limit.</summary>
    [TearDown]
    public void RestoreMapMemoryLimit() => MapMemory.Limit = SavedLimit;
}
