"""The simulated clock: idle waits are free, real work is waited for."""

import asyncio
import threading

from earshot.clock import SimulatedClock, run_blocking


def test_idle_waits_take_virtual_time_only() -> None:
    clock = SimulatedClock(charge_compute=False)

    async def main() -> list[float]:
        seen: list[float] = []

        async def waiter(ms: float) -> None:
            await clock.sleep_ms(ms)
            seen.append(clock.now_ms())

        await asyncio.gather(waiter(3000), waiter(1000), waiter(2000))
        return seen

    assert clock.run(main) == [1000, 2000, 3000]


def test_blocking_work_is_free_without_charging_and_time_stands_still() -> None:
    clock = SimulatedClock(charge_compute=False)

    async def main() -> tuple[float, float]:
        async def ticker() -> None:
            await clock.sleep_ms(10)

        t = asyncio.create_task(ticker())
        # The timer at 10 ms must not fire while the blocking job holds virtual time.
        before = clock.now_ms()
        await run_blocking(threading.Event().wait, 0.05)  # 50 ms of real work
        after = clock.now_ms()
        await t
        return before, after

    assert clock.run(main) == (0.0, 0.0)


def test_charged_work_advances_virtual_time_by_its_real_duration() -> None:
    clock = SimulatedClock(charge_compute=True)

    async def main() -> float:
        await run_blocking(threading.Event().wait, 0.05)
        return clock.now_ms()

    assert clock.run(main) >= 50.0


def test_timeouts_fire_on_virtual_time() -> None:
    clock = SimulatedClock()

    async def main() -> float:
        try:
            async with asyncio.timeout(0.25):
                await asyncio.sleep(60)
        except TimeoutError:
            pass
        return clock.now_ms()

    assert clock.run(main) == 250.0
